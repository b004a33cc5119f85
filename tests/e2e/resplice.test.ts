import t from 'tap'
import { parseIPv4 } from '../../core/bytes.js'
import type { Impairments } from '../../core/impair.js'
import { Random } from '../../core/random.js'
import type { ProxySessionApi } from '../../stages/proxy/session.js'
import { proxyNet, runProxied, SERVER, SERVER_PORT } from '../helpers/proxy-net.js'
import { sha } from '../helpers/tcp-net.js'

/**
 * Splice again right after an unsplice (issue 6 "splice, unsplice, resplice at random
 * moments"): a plug gateway splices as soon as the server answers, is unspliced three
 * times mid-transfer, and splices again inside `onUnspliced`, when the TCBs were just
 * rebuilt from FWD state and have sent nothing yet. Regressions this guards:
 * - a rebuilt TCB's last TSval was 0, so the next splice mapped the other peer's TSvals
 *   far below its TS.Recent: every segment failed PAWS, the peers bounced data-less ACKs
 *   off each other and the transfer stalled (1-path FWD) or the next unsplice timed out;
 * - a pure ACK beyond lost data advanced FWD's forwarded-up-to point, so a retransmitted
 *   FIN crossed the unsplice point unseen by the rebuilt TCBs and the splice never ended.
 * Both layouts and both final stages, with and without loss: every byte once and in order
 * (digests), every cycle completes, no stall longer than a few RTOs, the forwarder idle.
 */
const SIZE = 4_000_000
const CYCLES = 3
const data = (n: number, seed: number): Uint8Array => new Random(seed).bytes(new Uint8Array(n))
const CLEAN: Impairments = { delayMs: 2 }
const LOSSY: Impairments = { delayMs: 2, jitterMs: 1, loss: 0.01, reorder: 0.02, reorderDelayMs: 3, duplicate: 0.01 }
/** Without loss: nothing should wait for a timeout. With loss: a few RTOs (200 ms min, doubling). */
const STALL_CLEAN_MS = 250
const STALL_LOSSY_MS = 3_000

for (const lossy of [false, true]) for (const layout of ['1-path', '2-path'] as const) for (const mode of ['fwd', 'ipfwd'] as const) {
  t.test(`${layout} ${mode}${lossy ? ' with loss' : ''}: splice again inside onUnspliced, ${CYCLES} cycles`, async t => {
    let sess: ProxySessionApi | null = null
    let unspliced = 0
    const failures: string[] = []
    const impair = lossy ? LOSSY : CLEAN
    const net = proxyNet({
      name: 'plug',
      onClientOpen: s => s.connect(parseIPv4(SERVER), SERVER_PORT),
      onServerOpen: s => {
        sess = s
        s.splice({ mode })
      },
      onUnspliced: s => {
        unspliced++
        s.splice({ mode })
      },
      onUnspliceFailed: (_s, why) => failures.push(`unsplice: ${why}`),
      onSpliceFailed: (_s, why) => failures.push(`splice: ${why}`),
    }, { seed: lossy ? 7 : 1, impair1: impair, impair2: impair, forwarder: { layout } })
    const up = data(SIZE, 1)
    const down = data(SIZE, 2)
    let asked = 0
    let last = -1
    let lastAt = 0
    let stall = 0
    const r = runProxied(net, up, down, {
      limitMs: 120_000,
      during: (now, c, s) => {
        const got = c.received + (s?.received ?? 0)
        if (got !== last || (c.gotEnd && s?.gotEnd === true)) {
          last = got
          lastAt = now
        } else stall = Math.max(stall, now - lastAt)
        const api = sess as ProxySessionApi | null
        // Unsplice while both directions still carry data (before either FIN): at 1/8, 2/8, 3/8 of the faster one.
        if (api !== null && api.state === 'spliced' && asked < CYCLES && Math.max(c.received, s?.received ?? 0) > (asked + 1) * SIZE / 8) {
          asked++
          api.unsplice()
        }
      },
    })
    t.ok(r.ok, `completed: ${JSON.stringify(net.fw.stats)}`)
    t.equal(r.server?.digest(), sha(up), 'server got every byte once, in order')
    t.equal(r.client.digest(), sha(down), 'client got every byte once, in order')
    t.same(failures, [], `no splice or unsplice failed: ${failures.join("; ")}`)
    t.equal(unspliced, CYCLES, `${CYCLES} unsplices`)
    t.equal(net.fw.stats.splices, CYCLES + 1, 'every splice completed')
    t.ok(stall <= (lossy ? STALL_LOSSY_MS : STALL_CLEAN_MS), `longest stall ${stall} ms virtual`)
  })
}
