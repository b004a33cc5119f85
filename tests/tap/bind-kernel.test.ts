// SOCKS5 BIND with real Linux hosts: a kernel client in one namespace BINDs through our
// proxy (on TAP devices) for a server in another namespace; the first reply's BND.ADDR/
// BND.PORT must be reachable from the server namespace: the kernel server connects there,
// data flows both ways spliced (digests), and a connection to the port from another
// address of the server namespace is refused first. curl cannot BIND: both peers are
// tiny Node programs started with `ip netns exec`. Namespaces are uniquely named and
// always deleted.
//
//   client ns 10.78.1.2 ─ TAP ─ 10.78.1.1 [our proxy host] 10.78.2.1 ─ TAP ─ 10.78.2.2 (+ .3) server ns
import t from 'tap'
import { Scheduler } from '../../core/scheduler.js'
import { Netns, TapDevice, netAdminUnavailable } from '../../drivers/tap/index.js'
import { Host } from '../../paths/host.js'
import { ProxyForwarder } from '../../paths/proxy/forwarder.js'
import { socks5Proxy, type Socks5LogEvent } from '../../stages/proxy/handlers/socks5.js'
import { TcpModule } from '../../stages/tcp/module.js'
import { lastJson, supervise, undoOnTeardown } from '../helpers/proxy-kernel.js'

const DOWN = 8 * 2 ** 20
const UP = 4 * 2 ** 20
const LIMIT_MS = 40_000

/** Sends `size` random octets (64 KiB chunks, backpressure) on `s`, then FIN; hashes them. */
const SENDER = `
const net = require('net'), crypto = require('crypto');
function send(s, size, done) {
  const h = crypto.createHash('sha256'); let sent = 0;
  const more = () => { while (sent < size) { const c = crypto.randomBytes(Math.min(65536, size - sent)); h.update(c); sent += c.length; if (!s.write(c)) return void s.once('drain', more); } s.end(); done(sent, h.digest('hex')); };
  more();
}`

/** The client: greeting (no auth), BIND for argv server; prints the first reply, then the transfer's report. */
const BIND_CLIENT = `${SENDER}
const [proxy, port, server, up, limit] = process.argv.slice(-5);
const r = { received: 0, rdigest: '', sent: 0, sdigest: '' };
const rh = crypto.createHash('sha256');
const s = net.connect({ host: proxy, port: Number(port), allowHalfOpen: true });
let buf = Buffer.alloc(0), stage = 0;
const ip = (b, at) => [b[at], b[at + 1], b[at + 2], b[at + 3]].join('.');
const fail = m => { console.log(JSON.stringify({ error: m })); process.exit(0); };
s.on('connect', () => s.write(Buffer.from([5, 1, 0, 5, 2, 0, 1, ...server.split('.').map(Number), 0, 0])));
s.on('data', d => {
  if (stage < 3) {
    buf = Buffer.concat([buf, d]);
    if (stage === 0 && buf.length >= 2) { if (buf[1] !== 0) fail('method ' + buf[1]); buf = buf.subarray(2); stage = 1; }
    if (stage === 1 && buf.length >= 10) { if (buf[1] !== 0) fail('first reply REP ' + buf[1]); console.log(JSON.stringify({ bound: { host: ip(buf, 4), port: buf.readUInt16BE(8) } })); buf = buf.subarray(10); stage = 2; }
    if (stage === 2 && buf.length >= 10) {
      if (buf[1] !== 0) fail('second reply REP ' + buf[1]);
      r.peer = { host: ip(buf, 4), port: buf.readUInt16BE(8) }; buf = buf.subarray(10); stage = 3;
      send(s, Number(up), (n, dg) => { r.sent = n; r.sdigest = dg; });
      d = buf;
    } else return;
  }
  if (d.length) { rh.update(d); r.received += d.length; }
});
s.on('end', () => { r.rdigest = rh.digest('hex'); });
s.on('close', () => { console.log(JSON.stringify(r)); process.exit(0); });
s.on('error', e => fail(e.code || e.message));
setTimeout(() => fail('timeout'), Number(limit)).unref();`

/** The server: connects to argv host:port (from argv local), sends, reads to the FIN; prints a report (or the error code). */
const CONNECTING_SERVER = `${SENDER}
const [host, port, local, down, limit] = process.argv.slice(-5);
const r = { received: 0, rdigest: '', sent: 0, sdigest: '' };
const rh = crypto.createHash('sha256');
const s = net.connect({ host, port: Number(port), localAddress: local, allowHalfOpen: true });
s.on('connect', () => { r.localPort = s.localPort; send(s, Number(down), (n, dg) => { r.sent = n; r.sdigest = dg; }); });
s.on('data', d => { rh.update(d); r.received += d.length; });
s.on('end', () => { r.rdigest = rh.digest('hex'); });
s.on('close', () => { console.log(JSON.stringify(r)); process.exit(0); });
s.on('error', e => { console.log(JSON.stringify({ error: e.code || e.message })); process.exit(0); });
setTimeout(() => { console.log(JSON.stringify({ error: 'timeout' })); process.exit(0); }, Number(limit)).unref();`

interface Report {
  received: number
  rdigest: string
  sent: number
  sdigest: string
  peer?: { host: string; port: number }
  localPort?: number
  error?: string
}

t.test('BIND: the bound address is reachable from the server namespace; kernel peers, spliced, digests equal', { skip: netAdminUnavailable() ?? false }, async t => {
  const undo = undoOnTeardown(t)
  const clientNs = await Netns.create('bkc')
  undo.push(() => clientNs.delete())
  const serverNs = await Netns.create('bks')
  undo.push(() => serverNs.delete())
  const names = [clientNs.name, serverNs.name]
  const devs = names.map(name => TapDevice.open({ name }))
  undo.push(() => { for (const d of devs) void d.close() })
  const sched = new Scheduler()
  const host = new Host(sched, { name: 'proxy' })
  host.addInterface(devs[0]!, { address: '10.78.1.1/24' })
  host.addInterface(devs[1]!, { address: '10.78.2.1/24' })
  const tcp = new TcpModule(host, { config: { minRtoMs: 200, mslMs: 100 } })
  const log: Socks5LogEvent[] = []
  const handler = socks5Proxy({ rules: [{ action: 'allow', dst: '10.78.2.2' }], bind: true, bindTimeoutMs: 20_000, onLog: e => log.push(e) })
  const fw = new ProxyForwarder({ host, tcp, port: 1080, handler, layout: '1-path', lingerMs: 500 })
  undo.push(() => {
    fw.close()
    tcp.close()
    sched.stop()
    host.close()
  })
  sched.start()
  await clientNs.adopt(names[0]!, { addr: '10.78.1.2/24' })
  await serverNs.adopt(names[1]!, { addr: '10.78.2.2/24' })
  await serverNs.ip('addr', 'add', '10.78.2.3/24', 'dev', names[1]!)

  const started = Date.now()
  const cli = supervise(clientNs.spawn('node', ['-e', BIND_CLIENT, '10.78.1.1', '1080', '10.78.2.2', String(UP), String(LIMIT_MS)]), 'bind client', LIMIT_MS + 5000)
  await cli.ready(/"bound"/, 10_000)
  const bound = (JSON.parse(cli.stdout.split('\n').find(l => l.includes('"bound"'))!) as { bound: { host: string; port: number } }).bound
  t.equal(bound.host, '10.78.2.1', 'BND.ADDR: the proxy\'s address on the server side')
  // Another address of the server namespace is not DST.ADDR: refused.
  const wrong = supervise(serverNs.spawn('node', ['-e', CONNECTING_SERVER, bound.host, String(bound.port), '10.78.2.3', '1000', '10000']), 'wrong peer', 15_000)
  const w = lastJson<Report>(await wrong.done.catch((e: Error) => e.message), 'no report')
  t.equal(w.error, 'ECONNREFUSED', 'a connection from 10.78.2.3 is refused (RST)')
  t.equal(fw.stats.bindRefused, 1, 'counted')
  const srv = supervise(serverNs.spawn('node', ['-e', CONNECTING_SERVER, bound.host, String(bound.port), '10.78.2.2', String(DOWN), String(LIMIT_MS)]), 'connecting server', LIMIT_MS + 5000)
  const [cout, sout] = await Promise.all([cli.done.catch((e: Error) => e.message), srv.done.catch((e: Error) => e.message)])
  const c = lastJson<Report>(cout, 'no report')
  const s = lastJson<Report>(sout, 'no report')
  const ms = Date.now() - started
  t.notOk(c.error, `client finished ${c.error ?? ''}`)
  t.notOk(s.error, `server finished ${s.error ?? ''}`)
  t.same(c.peer, { host: '10.78.2.2', port: s.localPort }, 'second reply: the server\'s address and port')
  t.equal(c.received, DOWN, `client read all ${DOWN} octets`)
  t.equal(c.rdigest, s.sdigest, 'server → client: SHA-256 equal')
  t.equal(s.received, UP, `server read all ${UP} octets`)
  t.equal(s.rdigest, c.sdigest, 'client → server: SHA-256 equal')
  t.equal(fw.stats.bindAccepted, 1)
  t.ok(fw.stats.splices >= 1, 'the bound session was spliced')
  t.match(log.map(e => e.type), ['method', 'request', 'bound', 'connected'])
  t.comment(`bound at ${bound.host}:${bound.port}; ${(DOWN + UP) / 2 ** 20} MiB in ${ms} ms (including process start-up)`)
  await new Promise(r => setTimeout(r, 1500))
  t.equal(fw.sessions.size, 0, 'no session left on the proxy')
})
