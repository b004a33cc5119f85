// Transparent proxy with real Linux peers over TAP: the client namespace's route to the
// server's network goes through our host; `curl http://<server ip>:8000/file` goes straight
// to the server's address, our host intercepts it (answers as the server), connects to the
// server from its own address, and splices mid-transfer. SHA-256 of the file equal; tshark
// on the server leg shows only the proxy's address talking to the server.
import t from 'tap'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { haveTool, netAdminUnavailable, run } from '../../drivers/tap/index.js'
import { transparentProxy } from '../../stages/proxy/handlers/transparent.js'
import type { ProxySessionApi } from '../../stages/proxy/session.js'
import { CLIENT, NODE_HTTP_SERVER, PROXY_B, SERVER, proxyKernelNet, spliceAfter, supervise } from '../helpers/proxy-kernel.js'
import { xorshiftFill } from '../helpers/tcp-kernel.js'

const SIZE = 8 << 20
const LIMIT_MS = 30_000
const missing = ['curl', 'tshark'].find(x => !haveTool(x))
const unavailable = netAdminUnavailable() ?? (missing !== undefined ? `${missing} is not installed` : null)

if (unavailable !== null) {
  t.plan(0, `transparent kernel test skipped: ${unavailable}`)
} else {
  for (const mode of ['fwd', 'ipfwd'] as const) {
    t.test(`curl to the server's own address, intercepted, spliced to ${mode} mid-transfer`, async t => {
      const net = await proxyKernelNet('tk')
      t.teardown(() => net.close())
      const dir = mkdtempSync(join(tmpdir(), 'transparent-kernel-'))
      t.teardown(() => rmSync(dir, { recursive: true, force: true }))
      const body = new Uint8Array(SIZE)
      xorshiftFill({ x: 0x7654321 }, body)
      writeFileSync(join(dir, 'file'), body)
      const want = createHash('sha256').update(body).digest('hex')
      const srv = supervise(net.serverNs.spawn(process.execPath, ['-e', NODE_HTTP_SERVER, SERVER, '8000', dir]), 'node HTTP server', 120_000)
      await srv.ready(/listening/)

      // The server leg, seen by the server's kernel side of the TAP link.
      const pcap = join(dir, 'server-leg.pcap')
      const cap = net.serverNs.spawn('tshark', ['-q', '-i', net.devS.name, '-B', '64', '-w', pcap, '-F', 'pcap', '-f', 'tcp port 8000'])
      const capSup = supervise(cap, 'tshark', 120_000)
      await capSup.ready(/Capturing on/)

      let request = null as ReturnType<typeof spliceAfter> | null
      let session: ProxySessionApi | null = null
      const handler = transparentProxy({ splice: 'never', mode })
      const relay = handler.onServerOpen!.bind(handler)
      handler.onServerOpen = s => {
        session = s
        relay(s)
        request = spliceAfter(s, SIZE >> 2, { mode })
      }
      const fw = net.forwarder({ intercept: [{ dst: '10.77.2.0/24', ports: [8000] }], handler, lingerMs: 1000 })

      const out = join(dir, 'got')
      const { stdout } = await net.clientNs.run('curl', ['-sS', '--fail', '--max-time', String(LIMIT_MS / 1000), '-o', out, '-w', '%{speed_download}', `http://${SERVER}:8000/file`], { timeoutMs: LIMIT_MS + 5000 })
      t.equal(createHash('sha256').update(readFileSync(out)).digest('hex'), want, `curl got the ${SIZE}-byte file intact (SHA-256)`)
      const req = await request
      t.ok(req !== null && req.bytes.fromServer < SIZE, `spliced mid-transfer, after ${req?.bytes.fromServer} bytes`)
      const s = session as ProxySessionApi | null
      t.ok(s?.client.intercepted, 'the session was intercepted')
      t.equal(s?.client.localIp, (10 << 24 | 77 << 16 | 2 << 8 | 2) >>> 0, 'its original destination is the server')
      t.equal(fw.stats.splices, 1, 'spliced once')
      t.equal(fw.stats.spliceFailures, 0)
      for (const until = Date.now() + 5000; fw.stats.active > 0 && Date.now() < until;) await sleep(20)
      t.equal(fw.stats.active, 0, 'the session ended')

      cap.kill('SIGINT')
      await capSup.done.catch(() => undefined)
      const fields = ['ip.src', 'ip.dst', 'tcp.checksum.status', 'tcp.len']
      const args = ['-r', pcap, '-n', '-o', 'tcp.check_checksum:TRUE', '-Y', 'tcp', '-T', 'fields', '-E', 'occurrence=f']
      for (const f of fields) args.push('-e', f)
      const rows = (await run('tshark', args, { timeoutMs: 60_000 })).stdout.split('\n').filter(Boolean).map(l => l.split('\t'))
      t.ok(rows.length > 100, `tshark saw ${rows.length} segments on the server leg`)
      const peers = new Set(rows.map(r => (r[0] === SERVER ? r[1] : r[0])))
      t.same([...peers], [PROXY_B], 'the server only talked to the proxy address, never to the client')
      t.notOk(rows.some(r => r[0] === CLIENT || r[1] === CLIENT), `no segment carries the client address ${CLIENT}`)
      const fromProxy = rows.filter(r => r[0] === PROXY_B)
      t.equal(fromProxy.filter(r => r[2] === '1').length, fromProxy.length, 'every TCP checksum from the proxy (relayed and spliced) is good')
      t.comment(`curl via transparent proxy (${mode}): ${(Number(stdout) / 2 ** 20).toFixed(1)} MiB/s, splice took ${fw.stats.spliceMsTotal.toFixed(1)} ms`)
    })
  }
}
