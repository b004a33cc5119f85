import t from 'tap'
import { Random, testSeed } from '../../core/random.js'
import { randomTcbConfig, runTransfer, sha, twoTcpHosts } from '../helpers/tcp-net.js'
import { traceTcp } from '../helpers/tcp-trace.js'

const SEEDS = Number(process.env.TCP_RANDOM_SEEDS ?? 2000)

t.test(`randomized transfers through an impaired memory wire (${SEEDS} seeds)`, async t => {
  const base = testSeed()
  t.comment(`seed=${base} (replay one run with PATHSPLICE_SEED=<seed> TCP_RANDOM_SEEDS=1, add TCP_TRACE=1 for a packet trace)`)
  if (process.env.TCP_TRACE) t.teardown(traceTcp(line => t.comment(line)))
  let failures = 0
  let bytesMoved = 0
  let retransmits = 0
  const start = Date.now()
  for (let i = 0; i < SEEDS && failures < 3; i++) {
    const seed = (base + i) >>> 0
    const r = new Random(seed)
    const impair = {
      loss: r.next() * 0.1,
      reorder: r.next() * 0.1,
      reorderDelayMs: r.int(1, 20),
      duplicate: r.next() * 0.05,
      corrupt: r.next() * 0.03,
      delayMs: r.int(0, 20),
      jitterMs: r.int(0, 5),
    }
    const net = twoTcpHosts({ impair, seed, configA: randomTcbConfig(r), configB: randomTcbConfig(r), mtuA: r.chance(0.2) ? r.int(576, 1500) : 1500 })
    if (r.chance(0.3)) {
      // Sequence numbers and TSvals that cross 2^32 during the transfer.
      const near = (): number => (0xffffffff - r.int(0, 40000)) >>> 0
      net.tcpA.isn = () => ({ iss: near(), tsOffset: near() })
      net.tcpB.isn = () => ({ iss: near(), tsOffset: near() })
    }
    const aData = r.bytes(new Uint8Array(r.int(0, 60000)))
    const bData = r.bytes(new Uint8Array(r.chance(0.5) ? r.int(0, 60000) : r.int(0, 100)))
    const res = runTransfer(net, aData, bData, { rng: r, limitMs: 3_600_000 })
    const ok = res.ok && res.server !== null && res.server.received === aData.length && res.client.received === bData.length &&
      res.server.digest() === sha(aData) && res.client.digest() === sha(bData)
    bytesMoved += (res.server?.received ?? 0) + res.client.received
    retransmits += res.conn.stage.tcb.counters.retransmits + (res.server?.conn.stage.tcb.counters.retransmits ?? 0)
    if (!ok) {
      failures++
      t.fail(`seed=${seed}: transfer failed`, {
        ok: res.ok, impair, clientState: res.conn.stage.tcb.state, clientErr: res.client.error, serverErr: res.server?.error,
        serverReceived: res.server?.received, aLen: aData.length, clientReceived: res.client.received, bLen: bData.length,
        trace: res.conn.stage.tcb.trace, serverTrace: res.server?.conn.stage.tcb.trace,
      })
    }
  }
  t.equal(failures, 0, `all seeds from ${base} passed`)
  t.comment(`${SEEDS} seeds in ${Date.now() - start} ms, ${bytesMoved} bytes delivered, ${retransmits} retransmissions`)
  t.ok(retransmits > SEEDS, 'the impairments did force retransmissions')
})
