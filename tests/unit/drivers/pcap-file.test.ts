// The .pcap writer and reader: round trips, both byte orders and timestamp resolutions,
// malformed input, and tshark reading what we write.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PcapWriter, parsePcap, readPcap, PcapFormatError, PCAP_MAGIC_NS } from '../../../drivers/pcap/index.js'
import { haveTool } from '../../../drivers/tap/netns.js'
import { Msg } from '../../../core/msg.js'

const dir = mkdtempSync(join(tmpdir(), 'ps-pcap-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

/** An Ethernet frame: dst, src, type and `len` bytes of a counting payload. */
function eth(dst: number, src: number, type: number, len: number): Uint8Array {
  const f = new Uint8Array(14 + len)
  f.set([2, 0, 0, 0, 0, dst, 2, 0, 0, 0, 0, src, type >> 8, type & 0xff])
  for (let i = 0; i < len; i++) f[14 + i] = i & 0xff
  return f
}

t.test('round trip: frames, timestamps, snapshot cut, super-frames', async t => {
  const path = join(dir, 'rt.pcap')
  const w = new PcapWriter(path, { snaplen: 40000, bufferSize: 4096 })
  const frames = [eth(1, 2, 0x0800, 46), eth(2, 1, 0x86dd, 1486), eth(1, 2, 0x0806, 28), eth(3, 4, 0x0800, 60000)]
  const times = [1_700_000_000_123.456, 1_700_000_000_124, 1_700_000_001_000.999, 1_700_000_002_000]
  frames.slice(0, 3).forEach((f, i) => w.write(f, times[i]))
  w.writeMsg(Msg.from(frames[3]!), times[3])
  t.equal(w.frames, 4)
  t.ok(w.open)
  w.close()
  w.close()
  t.notOk(w.open)
  t.throws(() => w.write(frames[0]!), { message: /closed/ })

  const cap = readPcap(path)
  t.equal(cap.linktype, 1)
  t.equal(cap.snaplen, 40000)
  t.equal(cap.nanos, false)
  t.equal(cap.truncated, false)
  t.equal(cap.records.length, 4)
  for (let i = 0; i < 3; i++) t.same(Buffer.from(cap.records[i]!.data), Buffer.from(frames[i]!), `frame ${i} bytes`)
  t.equal(cap.records[3]!.data.length, 40000, 'cut at the snapshot length')
  t.equal(cap.records[3]!.origLen, 60014, 'original length kept')
  t.same(Buffer.from(cap.records[3]!.data), Buffer.from(frames[3]!.subarray(0, 40000)))
  t.equal(cap.records[0]!.tsSec, 1_700_000_000)
  t.equal(cap.records[0]!.tsNsec, 123_456_000, 'microsecond resolution')
  t.equal(cap.records[2]!.tsNsec, 999_000)
})

t.test('nanosecond files', async t => {
  const path = join(dir, 'ns.pcap')
  const w = new PcapWriter(path, { nanos: true })
  w.write(eth(1, 2, 0x0800, 46), 1_000.000_5)
  w.close()
  const raw = readFileSync(path)
  t.equal(raw.readUInt32LE(0), PCAP_MAGIC_NS)
  const cap = parsePcap(raw)
  t.equal(cap.nanos, true)
  t.equal(cap.records[0]!.tsSec, 1)
  t.ok(Math.abs(cap.records[0]!.tsNsec - 500) <= 1, `ns kept (${cap.records[0]!.tsNsec})`)
})

t.test('big-endian files with the default time source', async t => {
  // A hand-made big-endian microsecond file (as written on a big-endian host).
  const f = eth(9, 8, 0x0800, 10)
  const b = Buffer.alloc(24 + 16 + f.length)
  b.writeUInt32BE(0xa1b2c3d4, 0)
  b.writeUInt16BE(2, 4)
  b.writeUInt16BE(4, 6)
  b.writeUInt32BE(65535, 16)
  b.writeUInt32BE(1, 20)
  b.writeUInt32BE(5, 24)
  b.writeUInt32BE(250_000, 28)
  b.writeUInt32BE(f.length, 32)
  b.writeUInt32BE(f.length, 36)
  b.set(f, 40)
  const cap = parsePcap(b)
  t.equal(cap.records.length, 1)
  t.equal(cap.records[0]!.timeMs, 5250)
  t.same(Buffer.from(cap.records[0]!.data), Buffer.from(f))
  // now() default: within a second of the wall clock.
  const path = join(dir, 'now.pcap')
  const w = new PcapWriter(path)
  w.write(f)
  w.close()
  t.ok(Math.abs(readPcap(path).records[0]!.timeMs - Date.now()) < 1000)
})

t.test('malformed input', async t => {
  t.throws(() => parsePcap(new Uint8Array(10)), PcapFormatError)
  t.throws(() => parsePcap(new Uint8Array(24)), { code: 'PS_ERR_PCAP_FORMAT', message: /magic 0x00000000/ })
  const ng = Buffer.alloc(24)
  ng.writeUInt32BE(0x0a0d0d0a, 0)
  t.throws(() => parsePcap(ng), { message: /pcapng/ })
  const v1 = Buffer.alloc(24)
  v1.writeUInt32LE(0xa1b2c3d4, 0)
  v1.writeUInt16LE(1, 4)
  t.throws(() => parsePcap(v1), { message: /version 1\.0/ })
  // Cut inside a record header, then inside a record's data.
  const path = join(dir, 'cut.pcap')
  const w = new PcapWriter(path)
  w.write(eth(1, 2, 0x0800, 46), 0)
  w.write(eth(1, 2, 0x0800, 46), 1)
  w.close()
  const whole = readFileSync(path)
  const a = parsePcap(whole.subarray(0, whole.length - 10))
  t.equal(a.records.length, 1)
  t.equal(a.truncated, true)
  const b = parsePcap(whole.subarray(0, 24 + 76 + 8))
  t.equal(b.records.length, 1)
  t.equal(b.truncated, true)
})

t.test('tshark reads what we write, frame for frame', { skip: haveTool('tshark') ? false : 'tshark not installed' }, async t => {
  const path = join(dir, 'tshark.pcap')
  const frames = [eth(1, 2, 0x0800, 46), eth(2, 1, 0x86dd, 100), eth(1, 2, 0x0806, 28), eth(5, 6, 0x88b5, 1486)]
  const w = new PcapWriter(path)
  frames.forEach((f, i) => w.write(f, 1_700_000_000_000 + i * 250.5))
  w.close()
  const out = execFileSync('tshark', ['-r', path, '-T', 'fields', '-E', 'separator=,', '-e', 'frame.len', '-e', 'eth.dst', '-e', 'eth.src', '-e', 'eth.type', '-e', 'frame.time_epoch'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  })
  const rows = out.trim().split('\n').map(l => l.split(','))
  t.equal(rows.length, frames.length)
  rows.forEach((r, i) => {
    const f = frames[i]!
    t.equal(Number(r[0]), f.length, `frame ${i} length`)
    t.equal(r[1], `02:00:00:00:00:0${f[5]}`)
    t.equal(r[2], `02:00:00:00:00:0${f[11]}`)
    t.equal(parseInt(r[3]!, 16), (f[12]! << 8) | f[13]!)
    t.ok(Math.abs(Number(r[4]) - (1_700_000_000 + i * 0.2505)) < 1e-5, `frame ${i} time ${r[4]}`)
  })
  // And the bytes: tshark's hex dump of the data equals ours.
  const hex = execFileSync('tshark', ['-r', path, '-x'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  t.match(hex, /0000 {2}02 00 00 00 00 01 02 00 00 00 00 02 08 00 00 01/)
  writeFileSync(join(dir, 'empty.pcap'), Buffer.alloc(0))
  t.throws(() => readPcap(join(dir, 'empty.pcap')), PcapFormatError)
})
