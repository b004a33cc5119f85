/**
 * Classic libpcap capture files (`.pcap`), the format tshark, tcpdump and Wireshark read.
 *
 * Read first: pcap-savefile(5) and draft-ietf-opsawg-pcap (the file header, record header,
 * and the two magic numbers for microsecond and nanosecond timestamps).
 *
 * ```
 *   file header (24 bytes): magic | major 2 | minor 4 | thiszone | sigfigs | snaplen | linktype
 *   record (16 + n bytes):  ts_sec | ts_usec (or ts_nsec) | incl_len | orig_len | n bytes of frame
 * ```
 * We write little-endian microsecond files with LINKTYPE_ETHERNET; we read either byte
 * order and either timestamp resolution. Frames are written as they are on the wire
 * (GSO super-frames from an offloading TAP appear as one large frame, with the checksums
 * the kernel left partial).
 * @module
 */
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { PathspliceError } from '../../core/errors.js'
import type { Msg } from '../../core/msg.js'

/** pcap-savefile(5): magic of a file with microsecond timestamps. */
export const PCAP_MAGIC_US = 0xa1b2c3d4
/** pcap-savefile(5): magic of a file with nanosecond timestamps. */
export const PCAP_MAGIC_NS = 0xa1b23c4d
/** LINKTYPE_ETHERNET (tcpdump.org link-layer header types). */
export const LINKTYPE_ETHERNET = 1
/** Default snapshot length: large enough for a 64 KiB GSO super-frame. */
export const DEFAULT_SNAPLEN = 262144

const FILE_HDR = 24
const REC_HDR = 16

/** The file or data is not a pcap capture we can read. */
export class PcapFormatError extends PathspliceError {
  declare readonly code: 'PS_ERR_PCAP_FORMAT'
  constructor(message: string) {
    super(message, 'PS_ERR_PCAP_FORMAT')
    this.name = 'PcapFormatError'
  }
}

/** One captured frame. */
export interface PcapRecord {
  /** Seconds since the epoch. */
  tsSec: number
  /** Fraction of the second in nanoseconds (microsecond files are scaled by 1000). */
  tsNsec: number
  /** The timestamp in milliseconds since the epoch (float; loses sub-microsecond digits). */
  timeMs: number
  /** Captured bytes (a view into the file's buffer; copy it to keep it past the buffer's life). */
  data: Uint8Array
  /** Length of the frame on the wire (larger than `data.length` if the snapshot cut it). */
  origLen: number
}

/** A whole capture read into memory. */
export interface PcapCapture {
  /** Link-layer type (1 = Ethernet). */
  linktype: number
  /** Snapshot length from the file header. */
  snaplen: number
  /** True if timestamps were nanoseconds. */
  nanos: boolean
  /** The frames, in file order. */
  records: PcapRecord[]
  /** True if the file ended inside a record (a capture cut short); the partial record is left out. */
  truncated: boolean
}

/** Parses a capture held in memory. */
export function parsePcap(buf: Uint8Array): PcapCapture {
  if (buf.length < FILE_HDR) throw new PcapFormatError(`not a pcap file: ${buf.length} bytes, the file header alone is ${FILE_HDR}`)
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  const magicLE = dv.getUint32(0, true)
  let le: boolean
  let nanos: boolean
  if (magicLE === PCAP_MAGIC_US || magicLE === PCAP_MAGIC_NS) {
    le = true
    nanos = magicLE === PCAP_MAGIC_NS
  } else {
    const magicBE = dv.getUint32(0, false)
    if (magicBE !== PCAP_MAGIC_US && magicBE !== PCAP_MAGIC_NS) {
      const hint = magicBE === 0x0a0d0d0a ? ' (this is pcapng: convert it with `editcap -F pcap in.pcapng out.pcap`)' : ''
      throw new PcapFormatError(`not a pcap file: magic 0x${magicBE.toString(16).padStart(8, '0')}${hint}`)
    }
    le = false
    nanos = magicBE === PCAP_MAGIC_NS
  }
  const major = dv.getUint16(4, le)
  if (major !== 2) throw new PcapFormatError(`unsupported pcap version ${major}.${dv.getUint16(6, le)} (expected 2.4)`)
  const snaplen = dv.getUint32(16, le)
  // pcap-savefile(5): the link-layer type is the low 16 bits (upper bits: FCS info).
  const linktype = dv.getUint32(20, le) & 0xffff
  const records: PcapRecord[] = []
  let off = FILE_HDR
  let truncated = false
  while (off < buf.length) {
    if (off + REC_HDR > buf.length) {
      truncated = true
      break
    }
    const tsSec = dv.getUint32(off, le)
    const frac = dv.getUint32(off + 4, le)
    const incl = dv.getUint32(off + 8, le)
    const origLen = dv.getUint32(off + 12, le)
    if (off + REC_HDR + incl > buf.length) {
      truncated = true
      break
    }
    const tsNsec = nanos ? frac : frac * 1000
    records.push({ tsSec, tsNsec, timeMs: tsSec * 1000 + tsNsec / 1e6, data: buf.subarray(off + REC_HDR, off + REC_HDR + incl), origLen })
    off += REC_HDR + incl
  }
  return { linktype, snaplen, nanos, records, truncated }
}

/** Reads a whole `.pcap` file. */
export function readPcap(path: string): PcapCapture {
  return parsePcap(readFileSync(path))
}

/** Options of {@link PcapWriter}. */
export interface PcapWriterOptions {
  /** Snapshot length: longer frames are cut (their `orig_len` kept). Default 262144. */
  snaplen?: number
  /** Link-layer type (default 1, Ethernet). */
  linktype?: number
  /** Write nanosecond timestamps (default false: microseconds, which every tool reads). */
  nanos?: boolean
  /** Bytes buffered before a write to the file (default 64 KiB). */
  bufferSize?: number
  /** Wall-clock time in ms for frames written without a time (default: `performance.timeOrigin + performance.now()`). */
  now?: () => number
}

/**
 * Writes a `.pcap` file. Writes are buffered and synchronous (recording must not reorder
 * frames or keep them alive); call {@link close} (or {@link flush}) before reading the file.
 */
export class PcapWriter {
  /** The file path. */
  readonly path: string
  /** Frames written so far. */
  frames = 0
  /** Frame bytes written so far (after snapshot cut). */
  bytes = 0
  private fd: number
  private readonly buf: Buffer
  private readonly dv: DataView
  private fill = 0
  private readonly snaplen: number
  private readonly nanos: boolean
  private readonly now: () => number

  /** Creates (truncating) `path` and writes the file header. */
  constructor(path: string, opts: PcapWriterOptions = {}) {
    this.path = path
    this.snaplen = opts.snaplen ?? DEFAULT_SNAPLEN
    this.nanos = opts.nanos ?? false
    this.now = opts.now ?? (() => performance.timeOrigin + performance.now())
    this.buf = Buffer.alloc(Math.max(opts.bufferSize ?? 65536, FILE_HDR + REC_HDR))
    this.dv = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength)
    this.fd = openSync(path, 'w')
    const dv = this.dv
    dv.setUint32(0, this.nanos ? PCAP_MAGIC_NS : PCAP_MAGIC_US, true)
    dv.setUint16(4, 2, true)
    dv.setUint16(6, 4, true)
    dv.setInt32(8, 0, true) // thiszone: timestamps are UTC
    dv.setUint32(12, 0, true) // sigfigs: always 0
    dv.setUint32(16, this.snaplen, true)
    dv.setUint32(20, opts.linktype ?? LINKTYPE_ETHERNET, true)
    this.fill = FILE_HDR
  }

  /** Appends one frame; `timeMs` is wall-clock milliseconds since the epoch (default: now). */
  write(frame: Uint8Array, timeMs: number = this.now()): void {
    this.writeRange(frame, 0, frame.length, timeMs)
  }

  /** Appends the valid bytes of a Msg without copying them first. */
  writeMsg(msg: Msg, timeMs: number = this.now()): void {
    this.writeRange(msg.buf, msg.off, msg.end, timeMs)
  }

  /** Writes buffered records to the file. */
  flush(): void {
    if (this.fd < 0 || this.fill === 0) return
    let done = 0
    while (done < this.fill) done += writeSync(this.fd, this.buf, done, this.fill - done)
    this.fill = 0
  }

  /** Flushes and closes the file; idempotent. */
  close(): void {
    if (this.fd < 0) return
    this.flush()
    closeSync(this.fd)
    this.fd = -1
  }

  /** True until {@link close}. */
  get open(): boolean {
    return this.fd >= 0
  }

  private writeRange(src: Uint8Array, start: number, end: number, timeMs: number): void {
    if (this.fd < 0) throw new PathspliceError(`pcap writer for ${this.path} is closed`)
    const orig = end - start
    const incl = Math.min(orig, this.snaplen)
    if (this.fill + REC_HDR > this.buf.length) this.flush()
    const sec = Math.floor(timeMs / 1000)
    const fracMs = timeMs - sec * 1000
    let frac = this.nanos ? Math.floor(fracMs * 1e6) : Math.floor(fracMs * 1e3)
    frac = Math.min(frac, this.nanos ? 999_999_999 : 999_999)
    const dv = this.dv
    const o = this.fill
    dv.setUint32(o, sec >>> 0, true)
    dv.setUint32(o + 4, frac, true)
    dv.setUint32(o + 8, incl, true)
    dv.setUint32(o + 12, orig, true)
    this.fill += REC_HDR
    if (this.fill + incl > this.buf.length) {
      // Too big to buffer (a GSO super-frame): flush the header, write the bytes straight.
      this.flush()
      let done = 0
      while (done < incl) done += writeSync(this.fd, src, start + done, incl - done)
    } else {
      this.buf.set(src.subarray(start, start + incl), this.fill)
      this.fill += incl
    }
    this.frames++
    this.bytes += incl
  }
}
