// Live capture and injection through libpcap (the optional `pcap` package) on a TAP
// interface of our own: frames we write into the TAP are captured by the BPF filter;
// frames injected through libpcap come out of the TAP's fd. Only a local experimental
// EtherType (0x88b5) is used and IPv6 is off on the interface, so nothing else is sent.
import t from 'tap'
import { TapDevice, haveTool, netAdminUnavailable, run, uniqueName } from '../../drivers/tap/index.js'
import { openLive, loadPcapModule, recordDevice, readPcap } from '../../drivers/pcap/index.js'
import type { PcapLiveDevice } from '../../drivers/pcap/index.js'
import { framePool } from '../../core/msg.js'
import type { Msg } from '../../core/msg.js'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const unavailable = netAdminUnavailable()
let pcapMissing: string | null = null
try {
  await loadPcapModule()
} catch (err) {
  pcapMissing = (err as Error).message
}
if (unavailable !== null) t.plan(0, `live pcap tests skipped: ${unavailable}`)
else if (pcapMissing !== null) t.plan(0, `live pcap tests skipped: ${pcapMissing}`)
else await main()

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) return false
    await new Promise(r => setTimeout(r, 10))
  }
  return true
}

function frame(src: Uint8Array, tag: number): Msg {
  const m = framePool.alloc()
  const o = m.off
  m.buf.set([2, 0, 0, 0, 0, 0x42], o)
  m.buf.set(src, o + 6)
  m.buf.set([0x88, 0xb5, tag, ...new Array<number>(45).fill(tag)], o + 12)
  m.end = o + 60
  return m
}

function tags(into: number[]) {
  return (batch: Msg[], n: number): void => {
    for (let i = 0; i < n; i++) {
      const m = batch[i]!
      if (m.buf[m.off + 12] === 0x88 && m.buf[m.off + 13] === 0xb5) into.push(m.buf[m.off + 14]!)
      m.free()
    }
  }
}

async function main(): Promise<void> {
  t.test('capture with a BPF filter and inject, on a TAP of ours', async t => {
    const name = uniqueName('pl')
    const tap = TapDevice.open({ name, up: false })
    t.teardown(() => tap.close())
    await run('sysctl', ['-q', '-w', `net.ipv6.conf.${name}.disable_ipv6=1`])
    await run('ip', ['link', 'set', name, 'up'])
    const dir = mkdtempSync(join(tmpdir(), 'ps-live-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))

    let live: PcapLiveDevice
    try {
      live = await openLive(name, { filter: 'ether proto 0x88b5' })
    } catch (err) {
      t.fail(`openLive: ${(err as Error).message}`)
      return
    }
    const file = join(dir, 'live.pcap')
    const rec = recordDevice(live, file)
    t.teardown(() => rec.close())
    t.equal(live.name, name)
    t.same([...live.mac], [...tap.mac], 'MAC read from sysfs')

    const captured: number[] = []
    rec.onReceive(tags(captured))
    const fromTap: number[] = []
    tap.onReceive(tags(fromTap))

    // TAP fd -> kernel receives on the interface -> libpcap captures it.
    tap.send([frame(tap.mac, 1), frame(tap.mac, 2), frame(tap.mac, 3)], 3)
    t.ok(await waitFor(() => captured.length >= 3, 5000), `captured ${captured.join(',')}`)
    t.same(captured.slice(0, 3), [1, 2, 3])

    // libpcap injects -> the kernel transmits on the interface -> our TAP fd reads it.
    rec.send([frame(tap.mac, 7), frame(tap.mac, 8)], 2)
    t.ok(await waitFor(() => fromTap.length >= 2, 5000), `TAP read ${fromTap.join(',')}`)
    t.same(fromTap, [7, 8])
    t.equal(live.stats().txFrames, 2)
    t.ok(live.stats().rxFrames >= 3)
    await rec.close()
    const recorded = readPcap(file).records.map(r => r.data[14])
    t.same(recorded.slice(0, 3), [1, 2, 3], 'the recording holds the captured frames')
    t.ok(recorded.includes(7) && recorded.includes(8), 'and the injected ones')
    if (haveTool('tshark')) {
      const out = (await run('tshark', ['-r', file, '-T', 'fields', '-e', 'eth.type', '-e', 'frame.len'])).stdout.trim().split('\n')
      t.equal(out.length, recorded.length, 'tshark reads as many frames')
      t.ok(out.every(l => l === '0x88b5\t60'), 'each an 0x88b5 frame of 60 bytes')
    }
  })
}
