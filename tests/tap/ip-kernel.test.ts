// Our IPv4 stack against the real Linux kernel over TAP devices, in namespaces this test
// creates: (1) namespace A pings our host and our host pings A; (2) namespace A reaches
// namespace B through our IP router path: ping, then a kernel TCP transfer whose SHA-256
// is compared on both ends, while tshark on both sides checks every IP header checksum.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Scheduler } from '../../core/scheduler.js'
import { TapDevice, Netns, netAdminUnavailable, haveTool } from '../../drivers/tap/index.js'
import { Host } from '../../paths/host.js'
import { IpRouter } from '../../paths/ip-router.js'
import { digestClient, digestServer } from '../helpers/kernel-transfer.js'

const unavailable = netAdminUnavailable() ?? (haveTool('ping') ? null : 'ping (iputils-ping) is not installed')
if (unavailable !== null) {
  t.plan(0, `kernel IP tests skipped: ${unavailable}`)
} else {
  kernelPingsHost()
  routerBetweenNamespaces(false)
  routerBetweenNamespaces(true)
}

function pingStats(out: string): { tx: number; rx: number } {
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out)
  return m ? { tx: Number(m[1]), rx: Number(m[2]) } : { tx: -1, rx: -1 }
}

function kernelPingsHost(): void {
  t.test('namespace A pings our host over a TAP device, and our host pings A', async t => {
    const ns = await Netns.create('pi')
    t.teardown(() => ns.delete())
    const dev = TapDevice.open({ name: ns.name })
    t.teardown(() => dev.close())
    const sched = new Scheduler()
    const host = new Host(sched, { name: 'us' })
    host.addInterface(dev, { address: '10.212.0.2/24', mac: '02:00:00:00:21:02' })
    sched.start()
    t.teardown(() => {
      sched.stop()
      host.close()
    })
    await ns.adopt(dev.name, { addr: '10.212.0.1/24' })
    const { stdout } = await ns.run('ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.212.0.2'], { timeoutMs: 15_000 })
    t.same(pingStats(stdout), { tx: 3, rx: 3 }, 'kernel ping: 3 sent, 3 replies')
    // A 3000-byte ping arrives in fragments: our reassembly must rebuild it.
    const big = await ns.run('ping', ['-c', '1', '-s', '3000', '-W', '2', '10.212.0.2'], { timeoutMs: 15_000 })
    t.same(pingStats(big.stdout), { tx: 1, rx: 1 }, 'fragmented ping answered (reassembly + fragmentation)')
    t.equal(host.reassembler.stats().completed, 1)
    const r = await host.ping('10.212.0.1', { count: 3, intervalMs: 50, timeoutMs: 2000 })
    t.equal(r.received, 3, 'our ping: the kernel answered 3 of 3')
    const neigh = await ns.ip('neigh', 'show', '10.212.0.2')
    t.match(neigh, /lladdr 02:00:00:00:21:02/, 'the kernel learned our MAC by ARP')
  })
}

const SERVER = digestServer(30000)
const CLIENT = digestClient(30000, 0x9e3779b9)

function routerBetweenNamespaces(tso: boolean): void {
  t.test(`namespace A reaches namespace B through our IP router path (${tso ? 'VNET_HDR + TSO: GSO super-frames forwarded whole' : 'no offloads'})`, async t => {
    const nsA = await Netns.create('pr')
    t.teardown(() => nsA.delete())
    const nsB = await Netns.create('pr')
    t.teardown(() => nsB.delete())
    const devA = TapDevice.open({ name: nsA.name, tso })
    t.teardown(() => devA.close())
    const devB = TapDevice.open({ name: nsB.name, tso })
    t.teardown(() => devB.close())
    const sched = new Scheduler()
    const router = new IpRouter(sched, {
      sides: [
        { device: devA, address: '10.213.1.254/24', mac: '02:00:00:00:13:01' },
        { device: devB, address: '10.213.2.254/24', mac: '02:00:00:00:13:02' },
      ],
    })
    sched.start()
    t.teardown(() => {
      sched.stop()
      router.close()
    })
    await nsA.adopt(devA.name, { addr: '10.213.1.1/24' })
    await nsB.adopt(devB.name, { addr: '10.213.2.1/24' })
    await nsA.ip('route', 'add', 'default', 'via', '10.213.1.254')
    await nsB.ip('route', 'add', 'default', 'via', '10.213.2.254')

    const ping = await nsA.run('ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.213.2.1'], { timeoutMs: 15_000 })
    t.same(pingStats(ping.stdout), { tx: 3, rx: 3 }, 'A pings B through the router')
    const ttl = /ttl=(\d+)/.exec(ping.stdout)
    t.equal(ttl?.[1], '63', 'the router decremented the TTL once')

    const dir = mkdtempSync(join(tmpdir(), 'ps-ip-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    // tshark on the kernel side sees what the kernel hands its stack (segmented again with TSO).
    const capture = haveTool('tshark') && !tso
    const caps = capture
      ? [nsA.spawn('tshark', ['-q', '-i', devA.name, '-w', join(dir, 'a.pcap'), '-f', 'ip']), nsB.spawn('tshark', ['-q', '-i', devB.name, '-w', join(dir, 'b.pcap'), '-f', 'ip'])]
      : []
    // tshark needs a moment before it captures.
    if (capture) await sleep(1500)

    const server = nsB.spawn(process.execPath, ['-e', SERVER, '10.213.2.1'])
    await new Promise<void>((res, rej) => {
      server.stdout!.once('data', () => res())
      server.once('exit', code => rej(new Error(`server exited early (${code})`)))
    })
    const total = 8 << 20
    const started = performance.now()
    const { stdout } = await nsA.run(process.execPath, ['-e', CLIENT, '10.213.2.1', String(total)], { timeoutMs: 30_000 })
    const ms = performance.now() - started
    const r = JSON.parse(stdout) as { sent: number; digest: string; server: { bytes: number; digest: string } }
    t.equal(r.server.bytes, total, 'B received every byte')
    t.equal(r.server.digest, r.digest, 'SHA-256 matches on both ends')
    t.same(router.router.stats().drops, {}, 'the router dropped nothing')
    t.ok(router.router.forwarded > (tso ? 100 : 5000), `${router.router.forwarded} datagrams forwarded`)
    const st = router.router.stats()
    const avg = st.bytesForward / Math.max(1, st.pktsForward)
    if (tso) t.ok(avg > 1500, `super-frames crossed the router whole (A->B average ${avg.toFixed(0)} bytes)`)
    else t.ok(avg <= 1500, `MTU-sized datagrams only (A->B average ${avg.toFixed(0)} bytes)`)
    t.comment(`${(total / 2 ** 20).toFixed(0)} MiB through the IP router path in ${ms.toFixed(0)} ms (${((total * 8) / ms / 1e3).toFixed(0)} Mbit/s incl. process start)`)

    if (!capture) {
      t.comment(tso ? 'TSO run: checksums are checked by tshark in the plain run' : 'tshark is not installed: IP checksums not checked by a third party')
      return
    }
    await sleep(500)
    for (const c of caps) c.kill('SIGINT')
    await Promise.all(caps.map(c => new Promise<void>(res => (c.exitCode !== null ? res() : c.once('exit', () => res())))))
    for (const side of ['a', 'b']) {
      const file = join(dir, `${side}.pcap`)
      const all = await nsA.run('tshark', ['-r', file, '-o', 'ip.check_checksum:TRUE', '-T', 'fields', '-e', 'ip.checksum.status'], { timeoutMs: 60_000 })
      const status = all.stdout.split('\n').filter(Boolean)
      const bad = status.filter(s => s !== '1' && s !== 'Good').length
      t.ok(status.length > 1000, `tshark saw ${status.length} IP packets on side ${side}`)
      t.equal(bad, 0, `tshark: no bad IP checksums on side ${side}`)
    }
  })
}
