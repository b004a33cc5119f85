/**
 * HTTP/1.1 keep-alive through our HTTP proxy with Linux peers (root, TAP, namespaces):
 * one `curl` invocation fetches several files on one connection (`%{num_connects}` says
 * so) from a node HTTP/1.1 server in the server namespace; the proxy splices each
 * response body and unsplices at its last byte to read the next request. Body digests
 * equal; 1-path with FWD and 2-path with IP/FWD.
 *
 * Run: `npx tap tests/tap/http-keepalive-kernel.test.ts` (as root).
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Random } from '../../core/random.js'
import { haveTool, netAdminUnavailable } from '../../drivers/tap/index.js'
import { httpProxy, type HttpLogEvent } from '../../stages/proxy/handlers/http.js'
import { PROXY_A, proxyKernelNet, SERVER, supervise } from '../helpers/proxy-kernel.js'

/** A keep-alive HTTP/1.1 file server: `node -e SRC <addr> <port> <dir>` (node's default: persistent, Content-Length). */
const KEEPALIVE_SERVER = `
const http = require('node:http'), fs = require('node:fs'), path = require('node:path');
const dir = process.argv[3];
const srv = http.createServer((req, res) => {
  const f = path.join(dir, path.basename(req.url));
  fs.readFile(f, (err, b) => {
    if (err) { res.writeHead(404, { 'content-length': 0 }); return res.end() }
    res.writeHead(200, { 'content-length': b.length, 'content-type': 'application/octet-stream' });
    res.end(b);
  });
});
srv.keepAliveTimeout = 30000;
srv.listen(Number(process.argv[2]), process.argv[1], () => console.log('listening'));`

const unavailable = netAdminUnavailable() ?? (haveTool('curl') ? null : 'curl is not installed')
const SEED = Number(process.env.HTTP_KERNEL_SEED ?? 20261201)

if (unavailable !== null) {
  t.plan(0, `HTTP keep-alive kernel test skipped: ${unavailable}`)
} else {
  t.comment(`seed ${SEED} (HTTP_KERNEL_SEED to change)`)
  for (const [layout, mode] of [['1-path', 'fwd'], ['2-path', 'ipfwd']] as const) {
    t.test(`curl keep-alive through the HTTP proxy, ${layout} ${mode}: each response spliced and unspliced`, async t => {
      // Netns.create adds the pid and a counter: unique names, other kernel tests may run at once.
      const net = await proxyKernelNet(`hk${layout[0]}`)
      t.teardown(() => net.close())
      const dir = mkdtempSync(join(tmpdir(), 'http-keepalive-'))
      t.teardown(() => rmSync(dir, { recursive: true, force: true }))
      const rnd = new Random(SEED + (layout === '2-path' ? 1 : 0))
      const sizes = [rnd.int(200_000, 3_000_000), rnd.int(10, 2000), rnd.int(1_000_000, 6_000_000), rnd.int(50_000, 500_000), rnd.int(2_000_000, 8_000_000)]
      const want = sizes.map((n, i) => {
        const b = rnd.bytes(new Uint8Array(n))
        writeFileSync(join(dir, `f${i}`), b)
        return createHash('sha256').update(b).digest('hex')
      })
      const child = net.serverNs.spawn(process.execPath, ['-e', KEEPALIVE_SERVER, SERVER, '8000', dir])
      const srv = supervise(child, 'node HTTP/1.1 server', 120_000)
      t.teardown(() => {
        child.kill('SIGKILL')
        return srv.done.catch(() => undefined)
      })
      await srv.ready(/listening/)
      const log: HttpLogEvent[] = []
      const fw = net.forwarder({
        port: 8080, layout, lingerMs: 1000,
        handler: httpProxy({ routes: [{ host: 'files.test', servers: [{ ip: SERVER, port: 8000 }] }], mode, onLog: e => log.push(e) }),
      })
      const out = sizes.flatMap((_, i) => ['-o', join(dir, `got${i}`), `http://${PROXY_A}:8080/f${i}`])
      const started = Date.now()
      const { stdout } = await net.clientNs.run('curl', ['-sS', '--fail', '--http1.1', '--max-time', '60', '-H', 'Host: files.test', '-w', '%{num_connects} %{http_code}\\n', ...out], { timeoutMs: 70_000 })
      const ms = Date.now() - started
      const lines = stdout.trim().split('\n')
      t.equal(lines.length, sizes.length, `curl reported ${sizes.length} transfers`)
      t.same(lines.map(l => l.split(' ')[1]), sizes.map(() => '200'), 'all 200')
      const connects = lines.reduce((a, l) => a + Number(l.split(' ')[0]), 0)
      t.equal(connects, 1, `one TCP connection for ${sizes.length} requests (num_connects: ${lines.map(l => l.split(' ')[0]).join(',')})`)
      sizes.forEach((n, i) => {
        const got = createHash('sha256').update(readFileSync(join(dir, `got${i}`))).digest('hex')
        t.equal(got, want[i], `f${i}: ${n} bytes, SHA-256 equal`)
      })
      t.equal(fw.stats.accepted, 1, 'the proxy accepted one connection')
      const spliced = log.filter(e => e.type === 'splice' && e.unspliceAfter !== null).length
      // The tiny file comes with its head (written through, not spliced); the others are spliced.
      t.ok(spliced >= sizes.length - 1, `${spliced} response bodies spliced with an unsplice point`)
      t.equal(fw.stats.splices, spliced, 'each reached the final FWD')
      // The last one's unsplice may meet curl's FIN (then it stays spliced to the end, by design).
      const until = Date.now() + 5000
      while (fw.stats.unsplices + fw.stats.unspliceFailures < spliced && Date.now() < until) await sleep(20)
      t.ok(fw.stats.unsplices >= spliced - 1, `${fw.stats.unsplices} unspliced at the body's end (of ${spliced})`)
      t.same(log.filter(e => e.type === 'reject' || e.type === 'abort'), [], 'no rejects or aborts')
      const total = sizes.reduce((a, b) => a + b, 0)
      t.comment(`${layout} ${mode}: ${(total / 2 ** 20).toFixed(1)} MiB in ${ms} ms (${(total / 2 ** 20 / (ms / 1000)).toFixed(1)} MiB/s); ` +
        `splice ${(fw.stats.spliceMsTotal / Math.max(1, fw.stats.splices)).toFixed(1)} ms, unsplice ${(fw.stats.unspliceMsTotal / Math.max(1, fw.stats.unsplices)).toFixed(1)} ms on average`)
    })
  }
}
