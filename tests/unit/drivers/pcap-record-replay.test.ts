// Recording a device's traffic into a .pcap and replaying a .pcap into a path: into a
// receive handler, out of a device, into the memory wire, fast and at the recorded pace.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PcapWriter, readPcap, recordDevice, replayPcap } from '../../../drivers/pcap/index.js'
import type { PcapCapture } from '../../../drivers/pcap/index.js'
import { MemoryWire } from '../../../drivers/memory/index.js'
import { Scheduler } from '../../../core/scheduler.js'
import { NO_OFFLOADS } from '../../../core/device.js'
import type { Device, DeviceStats, ReceiveHandler } from '../../../core/device.js'
import { framePool } from '../../../core/msg.js'
import type { Msg } from '../../../core/msg.js'

const dir = mkdtempSync(join(tmpdir(), 'ps-rec-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

/** A device that keeps copies of what it is sent and lets the test inject received frames. */
class FakeDevice implements Device {
  readonly name = 'fake0'
  readonly mtu = 1500
  readonly mac = Uint8Array.of(2, 0, 0, 0, 0, 7)
  readonly offloads = NO_OFFLOADS
  sent: Uint8Array[] = []
  handler: ReceiveHandler | null = null
  closed = 0
  send(batch: Msg[], count: number): void {
    for (let i = 0; i < count; i++) {
      this.sent.push(batch[i]!.bytes().slice())
      batch[i]!.free()
    }
  }
  onReceive(handler: ReceiveHandler | null): void {
    this.handler = handler
  }
  receive(frames: Uint8Array[]): void {
    const batch = frames.map(f => framePool.allocFrom(f))
    this.handler?.(batch, batch.length)
  }
  stats(): DeviceStats {
    return { rxFrames: 0, rxBytes: 0, txFrames: this.sent.length, txBytes: 0, drops: {} }
  }
  async close(): Promise<void> {
    this.closed++
  }
}

function frame(i: number, len = 60): Uint8Array {
  const f = new Uint8Array(len)
  f.set([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x88, 0xb5, i >> 8, i & 0xff])
  return f
}

/** A capture of `n` frames, `gapMs` apart. */
function capture(n: number, gapMs: number): string {
  const path = join(dir, `cap-${n}-${gapMs}.pcap`)
  const w = new PcapWriter(path)
  for (let i = 0; i < n; i++) w.write(frame(i, 60 + i), 1_700_000_000_000 + i * gapMs)
  w.close()
  return path
}

const ids = (frames: Uint8Array[]): number[] => frames.map(f => (f[14]! << 8) | f[15]!)

t.test('recordDevice tees received and sent frames into a pcap, in order', async t => {
  const inner = new FakeDevice()
  const path = join(dir, 'rec.pcap')
  const dev = recordDevice(inner, path)
  t.equal(dev.name, 'fake0')
  t.equal(dev.mtu, 1500)
  t.same(dev.mac, inner.mac)
  t.same(dev.offloads, NO_OFFLOADS)
  const got: number[] = []
  dev.onReceive((batch, n) => {
    for (let i = 0; i < n; i++) {
      got.push((batch[i]!.buf[batch[i]!.off + 14]! << 8) | batch[i]!.buf[batch[i]!.off + 15]!)
      batch[i]!.free()
    }
  })
  inner.receive([frame(1), frame(2)])
  dev.send([framePool.allocFrom(frame(3))], 1)
  inner.receive([frame(4)])
  dev.flush()
  t.same(got, [1, 2, 4], 'the handler still gets every frame')
  t.same(ids(inner.sent), [3], 'the device still sends')
  t.equal(dev.stats().txFrames, 1)
  await dev.close()
  await dev.close()
  t.equal(inner.closed, 1, 'closes the wrapped device once')
  t.same(ids(readPcap(path).records.map(r => r.data)), [1, 2, 3, 4])
  dev.send([framePool.allocFrom(frame(5))], 1) // after close: not recorded, still sent
  t.same(ids(inner.sent), [3, 5])
})

t.test('recording only one direction, keeping the device open, removing the handler', async t => {
  const inner = new FakeDevice()
  const path = join(dir, 'rx-only.pcap')
  const dev = recordDevice(inner, path, { tx: false, closeDevice: false })
  dev.onReceive((b, n) => {
    for (let i = 0; i < n; i++) b[i]!.free()
  })
  inner.receive([frame(1)])
  dev.send([framePool.allocFrom(frame(2))], 1)
  dev.onReceive(null)
  t.equal(inner.handler, null)
  await dev.close()
  t.equal(inner.closed, 0)
  t.same(ids(readPcap(path).records.map(r => r.data)), [1])
  const txOnly = recordDevice(inner, join(dir, 'tx-only.pcap'), { rx: false })
  const h: ReceiveHandler = () => undefined
  txOnly.onReceive(h)
  t.equal(inner.handler, h, 'rx off: the handler is installed unwrapped')
  await txOnly.close()
})

t.test('replay into a receive handler, fast, in batches', async t => {
  const path = capture(150, 1)
  const batches: number[] = []
  const got: Uint8Array[] = []
  const r = await replayPcap(path, (batch, n) => {
    batches.push(n)
    for (let i = 0; i < n; i++) {
      const m = batch[i]!
      t.equal(m.ingress, 7)
      got.push(m.bytes().slice())
      m.free()
    }
  }, { batchSize: 64, ingress: 7 })
  t.equal(r.frames, 150)
  t.equal(r.aborted, false)
  t.same(batches, [64, 64, 22])
  t.same(ids(got), Array.from({ length: 150 }, (_, i) => i))
  t.equal(r.bytes, got.reduce((s, f) => s + f.length, 0))
  t.same(got.map(f => f.length), Array.from({ length: 150 }, (_, i) => 60 + i), 'lengths kept')
})

t.test('replay at the recorded pace (scaled by speed), skip and limit', async t => {
  const path = capture(5, 100) // 400 ms of capture
  const at: number[] = []
  const start = performance.now()
  const r = await replayPcap(path, (batch, n) => {
    for (let i = 0; i < n; i++) {
      at.push(performance.now() - start)
      batch[i]!.free()
    }
  }, { pace: 'recorded', speed: 2 })
  t.equal(r.frames, 5)
  t.ok(at[4]! >= 190, `last frame after ~200 ms (${at[4]!.toFixed(0)})`)
  t.ok(at[4]! < 1000, 'but not at the unscaled pace')
  // Pacing is against the recorded schedule (a late frame does not delay the next ones), so
  // the property that holds under any load is: no frame is handed over before it is due.
  for (let i = 1; i < 5; i++) t.ok(at[i]! >= i * 50 - 2, `frame ${i} not before ${i * 50} ms (${at[i]!.toFixed(0)})`)
  const sub: number[] = []
  await replayPcap(readPcap(path), (b, n) => {
    for (let i = 0; i < n; i++) {
      sub.push((b[i]!.buf[b[i]!.off + 14]! << 8) | b[i]!.buf[b[i]!.off + 15]!)
      b[i]!.free()
    }
  }, { skip: 1, limit: 2 })
  t.same(sub, [1, 2])
})

t.test('replay stops on abort, rejects other link types and bad speeds', async t => {
  const path = capture(200, 1)
  const ac = new AbortController()
  let seen = 0
  const r = await replayPcap(path, (b, n) => {
    for (let i = 0; i < n; i++) b[i]!.free()
    seen += n
    ac.abort()
  }, { signal: ac.signal, batchSize: 10 })
  t.equal(r.aborted, true)
  t.equal(r.frames, 10)
  t.equal(seen, 10)
  const raw: PcapCapture = { ...readPcap(path), linktype: 101 }
  await t.rejects(replayPcap(raw, () => undefined), { message: /link type 101/ })
  await t.rejects(replayPcap(path, () => undefined, { pace: 'recorded', speed: 0 }), RangeError)
})

t.test('replay out of a device, and into the memory wire', async t => {
  const path = capture(20, 1)
  const dev = new FakeDevice()
  await replayPcap(path, dev)
  t.same(ids(dev.sent), Array.from({ length: 20 }, (_, i) => i), 'sent in order')

  const sched = new Scheduler()
  sched.start()
  t.teardown(() => sched.stop())
  const wire = new MemoryWire(sched)
  t.teardown(() => wire.close())
  const got: Uint8Array[] = []
  wire.b.onReceive((b, n) => {
    for (let i = 0; i < n; i++) {
      got.push(b[i]!.bytes().slice())
      b[i]!.free()
    }
  })
  await replayPcap(path, wire.a)
  const end = Date.now() + 2000
  while (got.length < 20 && Date.now() < end) await new Promise(r => setTimeout(r, 5))
  const cap = readPcap(path)
  t.equal(got.length, 20)
  t.same(got.map(f => Buffer.from(f).toString('hex')), cap.records.map(r => Buffer.from(r.data).toString('hex')), 'the wire reproduces the capture byte for byte')
})
