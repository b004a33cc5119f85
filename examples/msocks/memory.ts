/**
 * MSOCKS on memory wires, in virtual time: a MobileSocket downloads 2 MB through an
 * MSOCKS proxy and moves between its two interfaces twice mid-transfer (once with the
 * old link cut), then prints the digests and what each move did.
 *
 * ```
 *   client 10.0.0.2 ── wire 1 ── 10.0.0.1 ┐
 *                                          proxy 10.0.1.1 ── wire 2 ── 10.0.1.2 server
 *   client 10.0.2.2 ── wire 3 ── 10.0.2.1 ┘
 * ```
 * Run: `npm run build:ts && node dist/examples/msocks/memory.js`
 * @module
 */
import { createHash } from 'node:crypto'
import { parseIPv4 } from '../../core/bytes.js'
import { ManualClock } from '../../core/clock.js'
import { Random } from '../../core/random.js'
import { Scheduler } from '../../core/scheduler.js'
import { MemoryWire } from '../../drivers/memory/wire.js'
import { Host } from '../../paths/host.js'
import { ProxyForwarder } from '../../paths/proxy/forwarder.js'
import { Resplicer } from '../../paths/proxy/resplice.js'
import { MsocksService } from '../../stages/proxy/handlers/msocks.js'
import { socks5Proxy } from '../../stages/proxy/handlers/socks5.js'
import { TcpModule } from '../../stages/tcp/module.js'
import { TcpServer, TcpSocket } from '../../stages/tcp/socket.js'
import { MobileSocket, type ReconnectInfo } from '../../clients/msocks/index.js'

const clock = new ManualClock()
const sched = new Scheduler({ clock })
const wires = [0, 1, 2].map(i => new MemoryWire(sched, { seed: i + 1, impair: { delayMs: 2 } }))
const client = new Host(sched, { name: 'client' })
const proxy = new Host(sched, { name: 'proxy' })
const server = new Host(sched, { name: 'server' })
const [w1, w2, w3] = wires as [MemoryWire, MemoryWire, MemoryWire]
const link = (a: Host, aAddr: string, b: Host, bAddr: string, w: MemoryWire): void => {
  a.addInterface(w.a, { address: `${aAddr}/24`, announce: false }).arp.setStatic(parseIPv4(bAddr), w.b.mac)
  b.addInterface(w.b, { address: `${bAddr}/24`, announce: false }).arp.setStatic(parseIPv4(aAddr), w.a.mac)
}
link(client, '10.0.0.2', proxy, '10.0.0.1', w1)
link(proxy, '10.0.1.1', server, '10.0.1.2', w2)
link(client, '10.0.2.2', proxy, '10.0.2.1', w3)
const tcpC = new TcpModule(client)
const tcpP = new TcpModule(proxy)
const tcpS = new TcpModule(server)

// The proxy: SOCKS5 with username/password, MSOCKS identifiers, and the resplicer.
const msocks = new MsocksService({ onLog: e => console.log('proxy:', JSON.stringify(e)) })
const handler = socks5Proxy({ users: { alice: 'wonderland' }, rules: [{ action: 'allow', dst: '10.0.1.0/24' }], msocks })
const fw = new ProxyForwarder({ host: proxy, tcp: tcpP, port: 1080, handler })
const resplicer = new Resplicer(fw, msocks)

// The server: 2 MB of random data to whoever connects, then FIN once the client's came.
const data = new Random(42).bytes(new Uint8Array(2_000_000))
new TcpServer(tcpS).listen(8080).on('connection', (s: TcpSocket) => {
  s.on('data', () => {})
  s.on('end', () => s.end())
  s.write(data)
})

// The mobile client, over our TCP here (Node's net by default).
const ms = new MobileSocket({
  proxy: { host: '10.0.0.1', port: 1080 }, target: { host: '10.0.1.2', port: 8080 }, auth: { user: 'alice', password: 'wonderland' },
  connect: t => new TcpSocket(tcpC.connect(parseIPv4(t.host), t.port)), now: () => clock.now(),
})
const h = createHash('sha256')
let got = 0
ms.on('data', (d: Buffer) => { h.update(d); got += d.length })
ms.on('reconnect', (i: ReconnectInfo) => console.log(`client: moved to ${ms.localAddress} in ${i.replyMs} ms (virtual), salvaged ${i.dataSalvage}, rewrote ${i.dataWrite}`))

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) {
    sched.runFor(1)
    await new Promise(r => setImmediate(r))
  }
}

/** Moves while virtual time runs (a plain await would stop the clock). */
async function move(proxyHost: string): Promise<void> {
  let done = false
  let failed: Error | null = null
  ms.reconnect({ proxyHost }).then(() => { done = true }, (e: Error) => { failed = e })
  await until(() => done || failed !== null)
  if (failed !== null) throw failed
}

await until(() => got > 600_000)
await move('10.0.2.1') // a clean switch to the second interface
await until(() => got > 1_200_000)
w3.a.lane = null // hard hand-off: the second link goes dead (nothing more crosses it)
await move('10.0.0.1')
await until(() => got === data.length)
ms.end()
await until(() => fw.sessions.size === 0 || clock.now() > 60_000)
const same = h.digest('hex') === createHash('sha256').update(data).digest('hex')
console.log(`client read ${got} octets, digest ${same ? 'equal' : 'DIFFERENT'}; proxy moved the session ${resplicer.stats.moved} times`)
process.exit(same ? 0 : 1)
