// TapDevice against the real kernel: open/configure, errors with errno text, moving the
// kernel side into a namespace, receiving the kernel's ARP/IPv6 frames, sending frames
// that tcpdump sees, and a clean process exit after close().
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { TapDevice, Netns, netAdminUnavailable, haveTool, uniqueName, run } from '../../drivers/tap/index.js'
import { parsePcap } from '../../drivers/pcap/index.js'
import { DeviceError } from '../../core/errors.js'
import { framePool } from '../../core/msg.js'
import type { Msg } from '../../core/msg.js'
import { formatMac, get16 } from '../../core/bytes.js'

const unavailable = netAdminUnavailable()
if (unavailable !== null) {
  t.plan(0, `TAP tests skipped: ${unavailable}`)
} else {
  await main()
}

/** Polls `cond` every 10 ms until true or `ms` elapse. */
async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) return false
    await new Promise(r => setTimeout(r, 10))
  }
  return true
}

interface Seen {
  type: number
  bytes: Uint8Array
}

/** Installs a handler that copies every frame's bytes and frees the Msg. */
function collect(dev: TapDevice): Seen[] {
  const seen: Seen[] = []
  dev.onReceive((batch: Msg[], n: number) => {
    for (let i = 0; i < n; i++) {
      const m = batch[i]!
      seen.push({ type: get16(m.buf, m.off + 12), bytes: m.bytes().slice() })
      m.free()
    }
  })
  return seen
}

function frame(dst: string, src: Uint8Array, type: number, payload: string): Msg {
  const m = framePool.alloc()
  const b = m.buf
  const o = m.off
  dst.split(':').forEach((h, i) => (b[o + i] = parseInt(h, 16)))
  b.set(src, o + 6)
  b[o + 12] = type >> 8
  b[o + 13] = type & 0xff
  const p = new TextEncoder().encode(payload.padEnd(46, '.'))
  b.set(p, o + 14)
  m.end = o + 14 + p.length
  return m
}

async function main(): Promise<void> {
  t.test('opens a TAP with the MTU and MAC asked for, as the kernel reports them', async t => {
    const name = uniqueName('pt')
    const fds = readdirSync('/proc/self/fd').length
    const threads = readdirSync('/proc/self/task').length
    const dev = TapDevice.open({ name, mtu: 1400, mac: '02:00:5e:10:20:30' })
    t.equal(readdirSync('/proc/self/task').length, threads + 1, 'one reader thread')
    t.teardown(() => dev.close())
    t.equal(dev.name, name)
    t.equal(dev.mtu, 1400)
    t.equal(formatMac(dev.mac), '02:00:5e:10:20:30')
    t.same(dev.offloads, { vnetHdr: false, tso: false })
    t.match(String(dev), /TapDevice\(pt-\d+-\d+ mtu 1400 02:00:5e:10:20:30\)/)
    const [link] = JSON.parse((await run('ip', ['-j', 'link', 'show', name])).stdout) as { mtu: number; address: string; flags: string[]; ifindex: number }[]
    t.equal(link!.mtu, 1400)
    t.equal(link!.address, '02:00:5e:10:20:30')
    t.ok(link!.flags.includes('UP'), 'brought up')
    t.equal(link!.ifindex, dev.ifindex)
    t.ok(dev.info().fd >= 0)
    await dev.close()
    await dev.close() // idempotent
    t.equal(dev.info().fd, -1)
    const after = spawnSync('ip', ['link', 'show', name])
    t.not(after.status, 0, 'closing the last fd deletes the interface')
    t.equal(readdirSync('/proc/self/task').length, threads, 'reader thread joined')
    t.equal(readdirSync('/proc/self/fd').length, fds, 'no fd left open (TAP fd, eventfd)')
  })

  t.test('a kernel-picked name and offload flags', async t => {
    const dev = TapDevice.open({ name: 'pst%d', tso: true, up: false })
    t.teardown(() => dev.close())
    t.match(dev.name, /^pst\d+$/)
    t.same(dev.offloads, { vnetHdr: true, tso: true })
    const [link] = JSON.parse((await run('ip', ['-j', 'link', 'show', dev.name])).stdout) as { flags: string[] }[]
    t.notOk(link!.flags.includes('UP'), 'left down')
    // TUNSETOFFLOAD(TSO) turns on TSO on the kernel side of the interface.
    if (haveTool('ethtool')) {
      const k = await run('ethtool', ['-k', dev.name])
      t.match(k.stdout, /tcp-segmentation-offload: on/)
    }
  })

  t.test('errors carry the errno and say what to do', async t => {
    const name = uniqueName('pt')
    const dev = TapDevice.open({ name })
    t.teardown(() => dev.close())
    t.throws(() => TapDevice.open({ name }), { name: 'DeviceError', code: 'PS_ERR_DEVICE', message: /^EBUSY: device busy/ })
    t.throws(() => TapDevice.open({ name: uniqueName('pn'), create: false }), { code: 'PS_ERR_DEVICE', message: /^ENODEV: no such device/ })
    t.throws(() => TapDevice.open({ name: 'lo' }), { message: /^EINVAL: .*not a TAP device/ })
    const long = 'x'.repeat(16)
    t.throws(() => TapDevice.open({ name: long }), DeviceError)
    try {
      TapDevice.open({ name: 'lo' })
    } catch (err) {
      t.match((err as DeviceError).cause, { code: 'EINVAL', syscall: 'ioctl' }, 'the system error is the cause')
    }
  })

  t.test('EPERM without CAP_NET_ADMIN', { skip: haveTool('setpriv') ? false : 'setpriv (util-linux) not installed' }, async t => {
    // Drop CAP_NET_ADMIN from the bounding set: even root then cannot TUNSETIFF.
    const loader = fileURLToPath(new URL('../../drivers/tap/native/index.js', import.meta.url))
    const script = `try { require(${JSON.stringify(loader)}).open('pe%d', 9, 0, new Uint8Array(0), 4, 2048, () => {}); console.log('opened') } catch (e) { console.log(e.code + ' ' + e.message) }`
    const r = spawnSync('setpriv', ['--bounding-set=-net_admin', '--inh-caps=-net_admin', process.execPath, '-e', script], { encoding: 'utf8', timeout: 10_000 })
    t.match(r.stdout, /^EPERM /, r.stderr)
    // And the TypeScript wrapper's text for it:
    const { tapOpenError } = await import('../../drivers/tap/index.js')
    t.match(tapOpenError({ code: 'EPERM', message: 'x' }, 'tap0').message, /^EPERM: opening \/dev\/net\/tun needs CAP_NET_ADMIN/)
  })

  t.test('in a namespace: kernel ARP and IPv6 frames arrive, our frames reach tcpdump', async t => {
    const ns = await Netns.create('pt')
    t.teardown(() => ns.delete())
    const dev = TapDevice.open({ name: ns.name })
    t.teardown(() => dev.close())
    const seen = collect(dev)
    await ns.adopt(dev.name, { addr: '10.200.0.1/24' })
    const links = await ns.ip('-j', 'link', 'show', dev.name)
    t.equal((JSON.parse(links) as { address: string }[])[0]!.address, formatMac(dev.mac), 'the interface lives in the namespace now')

    // IPv6 comes by itself once the link is up (MLD reports, DAD neighbor solicitations).
    t.ok(await waitFor(() => seen.some(s => s.type === 0x86dd), 5000), 'an IPv6 frame from the kernel')
    // A UDP datagram to an unknown neighbour makes the kernel ask ARP.
    await ns.run('bash', ['-c', 'echo hi > /dev/udp/10.200.0.2/9'])
    t.ok(await waitFor(() => seen.some(s => s.type === 0x0806), 5000), 'an ARP frame from the kernel')
    const arp = seen.find(s => s.type === 0x0806)!.bytes
    t.same([...arp.subarray(38, 42)], [10, 200, 0, 2], 'ARP asks for 10.200.0.2')
    t.same([...arp.subarray(6, 12)], [...dev.mac], 'sent by the interface')
    t.equal(dev.stats().rxFrames, seen.length)

    if (!haveTool('tcpdump')) {
      t.comment('tcpdump not installed: the send half is skipped')
      return
    }
    // tcpdump on the kernel side, writing pcap to stdout; we send 3 frames of a local
    // experimental EtherType (IEEE 802 0x88b5) that the kernel then drops.
    const dump = ns.spawn('tcpdump', ['-i', dev.name, '-U', '-c', '3', '-w', '-', 'ether proto 0x88b5'])
    const chunks: Buffer[] = []
    dump.stdout!.on('data', (c: Buffer) => chunks.push(c))
    let err = ''
    dump.stderr!.on('data', (c: Buffer) => (err += c.toString()))
    t.ok(await waitFor(() => /listening on/.test(err), 5000), 'tcpdump is listening')
    const exited = new Promise<number | null>(res => dump.once('exit', code => res(code)))
    const batch = [0, 1, 2].map(i => frame('02:00:00:00:00:99', dev.mac, 0x88b5, `pathsplice frame ${i}`))
    dev.send(batch, 3)
    const timer = setTimeout(() => dump.kill(), 5000)
    t.equal(await exited, 0, `tcpdump captured 3 frames (${err.trim()})`)
    clearTimeout(timer)
    const cap = parsePcap(Buffer.concat(chunks))
    t.equal(cap.records.length, 3)
    t.same(cap.records.map(r => new TextDecoder().decode(r.data.subarray(14, 32))), ['pathsplice frame 0', 'pathsplice frame 1', 'pathsplice frame 2'])
    t.equal(dev.stats().txFrames, 3)

    // Closing our fd removes the interface from the namespace it was moved to.
    await dev.close()
    t.ok(await waitFor(() => spawnSync('ip', ['-n', ns.name, 'link', 'show', dev.name]).status !== 0, 3000), 'interface gone after close')
    // Sending on a closed device drops and counts.
    dev.send([frame('02:00:00:00:00:99', dev.mac, 0x88b5, 'late')], 1)
    t.equal(dev.stats().drops['closed'], 1)
  })

  t.test('without a handler frames are dropped and counted; onError when the reader stops', async t => {
    const ns = await Netns.create('pt')
    t.teardown(() => ns.delete())
    const errors: DeviceError[] = []
    const dev = TapDevice.open({ name: ns.name, onError: e => errors.push(e) })
    t.teardown(() => dev.close())
    await ns.adopt(dev.name, { addr: '10.200.1.1/24' })
    await ns.run('bash', ['-c', 'for i in 1 2 3; do echo hi > /dev/udp/10.200.1.2/9; done'])
    t.ok(await waitFor(() => (dev.stats().drops['no-handler'] ?? 0) > 0, 5000), 'no-handler drops counted')
    t.equal(dev.stats().rxFrames, 0)
    // Deleting the interface from inside the namespace breaks our fd: the reader stops
    // with EBADFD and says so once.
    await ns.ip('link', 'del', dev.name)
    t.ok(await waitFor(() => errors.length > 0, 5000), 'onError called')
    t.match(errors[0]!.message, /^EBADFD: TAP 'pt-\d+-\d+': the reader stopped/)
    t.equal(dev.info().readerErrno, 77)
    await new Promise(r => setTimeout(r, 50))
    t.equal(errors.length, 1, 'reported once')
  })

  t.test('a frame with a partial checksum is completed on a device without offloads', async t => {
    const ns = await Netns.create('pt')
    t.teardown(() => ns.delete())
    const dev = TapDevice.open({ name: ns.name })
    t.teardown(() => dev.close())
    await ns.adopt(dev.name, { addr: '10.200.2.1/24' })
    if (!haveTool('tcpdump')) {
      t.comment('tcpdump not installed: skipped')
      return
    }
    const dump = ns.spawn('tcpdump', ['-i', dev.name, '-U', '-c', '1', '-w', '-', 'udp port 7777'])
    const chunks: Buffer[] = []
    dump.stdout!.on('data', (c: Buffer) => chunks.push(c))
    let err = ''
    dump.stderr!.on('data', (c: Buffer) => (err += c.toString()))
    t.ok(await waitFor(() => /listening on/.test(err), 5000))
    const exited = new Promise<void>(res => dump.once('exit', () => res()))
    // IPv4/UDP 10.200.2.2:7777 -> 10.200.2.1:7777, payload "abcd"; UDP checksum field holds
    // only the pseudo-header sum, as with CHECKSUM_PARTIAL (virtio NEEDS_CSUM).
    const m = framePool.alloc()
    const hex = '02000000009900000000009a0800' + '4500002000004000401100000ac802020ac80201' + '1e611e61000c0000' + '61626364'
    const bytes = Uint8Array.from(hex.match(/../g)!.map(h => parseInt(h, 16)))
    bytes.set(dev.mac, 0)
    m.buf.set(bytes, m.off)
    m.end = m.off + bytes.length
    // IPv4 header checksum (RFC 791) and the UDP pseudo-header sum (RFC 768).
    const ipSum = onesSum(bytes.subarray(14, 34))
    bytes[24] = ~ipSum >> 8 & 0xff
    bytes[25] = ~ipSum & 0xff
    m.buf.set(bytes, m.off)
    const pseudo = onesSum(Uint8Array.from([10, 200, 2, 2, 10, 200, 2, 1, 0, 17, 0, 12]))
    m.buf[m.off + 40] = pseudo >> 8
    m.buf[m.off + 41] = pseudo & 0xff
    m.vnet = { flags: 1, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 34, csumOffset: 6 }
    dev.send([m], 1)
    const timer = setTimeout(() => dump.kill(), 5000)
    await exited
    clearTimeout(timer)
    const rec = parsePcap(Buffer.concat(chunks)).records[0]
    t.ok(rec, 'captured')
    const udp = rec!.data.subarray(34)
    const full = onesSum(Uint8Array.from([10, 200, 2, 2, 10, 200, 2, 1, 0, 17, 0, 12, ...udp]))
    t.equal(full, 0xffff, 'UDP checksum verifies (one\'s complement sum is all ones)')
  })

  t.test('GSO frames cannot go out of a device without offloads: dropped and counted', async t => {
    const dev = TapDevice.open({ name: uniqueName('pt'), up: false })
    t.teardown(() => dev.close())
    const m = frame('02:00:00:00:00:99', dev.mac, 0x0800, 'x')
    m.vnet = { flags: 1, gsoType: 1, hdrLen: 54, gsoSize: 1448, csumStart: 34, csumOffset: 16 }
    const bad = frame('02:00:00:00:00:99', dev.mac, 0x0800, 'x')
    bad.end = bad.off // empty frame: bad range
    const down = frame('02:00:00:00:00:99', dev.mac, 0x88b5, 'x')
    dev.send([m, bad, down], 3)
    const d = dev.stats().drops
    t.equal(d['gso-unsupported'], 1)
    t.equal(d['bad-range'], 1)
    t.equal(d['tx-link-down'], 1, 'writing to a TAP that is down fails with EIO')
  })

  t.test('the process exits after close(); an open device with a handler keeps it alive', async t => {
    const loader = fileURLToPath(new URL('../../drivers/tap/native/index.js', import.meta.url))
    const body = (close: boolean): string => `
      const n = require(${JSON.stringify(loader)});
      const r = n.open('pq%d', 9, 0, new Uint8Array(0), 8, 2048, () => {});
      n.setRef(r.handle, true);
      ${close ? 'setTimeout(() => { n.close(r.handle); console.log("closed") }, 100)' : 'console.log("open")'}`
    const exitsWithin = (script: string, ms: number): Promise<boolean> =>
      new Promise(res => {
        const c = spawn(process.execPath, ['-e', script], { stdio: 'ignore' })
        const timer = setTimeout(() => {
          c.kill('SIGKILL')
          res(false)
        }, ms)
        c.once('exit', () => {
          clearTimeout(timer)
          res(true)
        })
      })
    t.equal(await exitsWithin(body(true), 5000), true, 'exits once closed')
    t.equal(await exitsWithin(body(false), 800), false, 'a referenced open device keeps the loop alive')
    const unrefd = body(false).replace('n.setRef(r.handle, true)', 'n.setRef(r.handle, false)')
    t.equal(await exitsWithin(unrefd, 5000), true, 'unref() lets it exit (the fd is closed at exit)')
  })

  t.test('ref()/unref() and option validation', async t => {
    const dev = TapDevice.open({ name: uniqueName('pt'), up: false })
    t.teardown(() => dev.close())
    t.equal(dev.unref(), dev)
    t.equal(dev.ref(), dev)
    t.throws(() => TapDevice.open({ batchSize: 0 }), { message: /batchSize 0/ })
    t.throws(() => TapDevice.open({ mtu: 1.5 }), { message: /mtu 1.5/ })
    t.throws(() => TapDevice.open({ mac: 'nope' }), { message: /bad MAC address/ })
    t.throws(() => TapDevice.open({ mac: new Uint8Array(3) }), { message: /mac must be 6 bytes/ })
  })
}

function onesSum(b: Uint8Array): number {
  let s = 0
  for (let i = 0; i + 1 < b.length; i += 2) s += (b[i]! << 8) | b[i + 1]!
  if (b.length & 1) s += b[b.length - 1]! << 8
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16)
  return s
}
