/**
 * A memory device for benchmarks. While `live` it is a pass-through to a memory-wire end
 * (so real hosts can connect and splice through it in virtual time); once switched to
 * bench mode it stops talking to the wire: the benchmark injects pre-built frames with
 * {@link BenchDevice.inject}, and everything the forwarder sends is inspected (TCP
 * sequence numbers, payload bytes) and freed at once, a recycling sink with no I/O.
 *
 * ```
 *   live:   wire ⇄ BenchDevice ⇄ host        bench:  inject() ─▶ host ─▶ send() ─▶ count, free
 * ```
 * @module
 */
import { NO_OFFLOADS, type Device, type DeviceOffloads, type DeviceStats, type ReceiveHandler } from '../../core/device.js'
import type { Msg } from '../../core/msg.js'

/** What the sink saw, in bench mode. */
export interface SinkCounters {
  /** Frames sent by the forwarder. */
  frames: number
  /** TCP segments carrying payload. */
  dataSegs: number
  /** Payload bytes in them. */
  dataBytes: number
  /** TCP segments without payload (ACKs, window updates). */
  pureAcks: number
  /** Highest `seq + len` of a data segment (mod 2^32), or -1 before the first one. */
  highSeq: number
}

/** A memory device: live pass-through to a wire end, then a benchmark injector and sink. */
export class BenchDevice implements Device {
  /** Device name. */
  readonly name: string
  /** MTU. */
  readonly mtu: number
  /** MAC address. */
  readonly mac: Uint8Array
  /** No offloads. */
  readonly offloads: DeviceOffloads = NO_OFFLOADS
  /** Pass frames to and from the wire (setup); false: inject and sink (measurement). */
  live = true
  /** Sink counters (bench mode). */
  readonly sink: SinkCounters = { frames: 0, dataSegs: 0, dataBytes: 0, pureAcks: 0, highSeq: -1 }
  /** Frames that arrived from the wire in bench mode (freed; a sign the peers were not quiet). */
  strays = 0
  /** Live mode: called with every frame received from the wire (for traces), before the host sees it. */
  onRx: ((m: Msg) => void) | null = null
  private handler: ReceiveHandler | null = null
  private readonly inner: Device | null

  /** Wraps `inner` (or stands alone, bench mode only, with `name`/`mac`). */
  constructor(inner: Device | null, opts: { name?: string; mac?: Uint8Array; mtu?: number } = {}) {
    this.inner = inner
    this.name = opts.name ?? inner?.name ?? 'bench0'
    this.mac = opts.mac ?? inner?.mac ?? Uint8Array.of(2, 0, 0, 0, 0, 0xbe)
    this.mtu = opts.mtu ?? inner?.mtu ?? 1500
    if (inner === null) this.live = false
    inner?.onReceive((batch, n) => {
      if (!this.live) {
        for (let i = 0; i < n; i++) batch[i]!.free()
        this.strays += n
        return
      }
      if (this.onRx !== null) for (let i = 0; i < n; i++) this.onRx(batch[i]!)
      this.handler?.(batch, n)
    })
  }

  /** Device: sends to the wire (live) or into the sink (bench). */
  send(batch: Msg[], count: number): void {
    if (this.live) {
      if (this.inner !== null) this.inner.send(batch, count)
      return
    }
    const s = this.sink
    for (let i = 0; i < count; i++) {
      const m = batch[i]!
      s.frames++
      const b = m.buf
      const ip = m.off + 14
      if (b[ip + 9] === 6) {
        const ihl = (b[ip]! & 15) * 4
        const tcp = ip + ihl
        const len = ((b[ip + 2]! << 8) | b[ip + 3]!) - ihl - (b[tcp + 12]! >>> 4) * 4
        if (len > 0) {
          s.dataSegs++
          s.dataBytes += len
          const hi = (((b[tcp + 4]! << 24) | (b[tcp + 5]! << 16) | (b[tcp + 6]! << 8) | b[tcp + 7]!) + len) >>> 0
          // A retransmission does not move the high mark back.
          if (s.highSeq === -1 || ((hi - s.highSeq) | 0) > 0) s.highSeq = hi
        } else s.pureAcks++
      }
      m.free()
    }
  }

  /** Hands `batch[0..n)` to the host as if received (bench mode). */
  inject(batch: Msg[], n: number): void {
    this.handler!(batch, n)
  }

  /** Device. */
  onReceive(handler: ReceiveHandler | null): void {
    this.handler = handler
  }

  /** Device. */
  stats(): DeviceStats {
    return { rxFrames: 0, rxBytes: 0, txFrames: this.sink.frames, txBytes: 0, drops: {} }
  }

  /** Device. */
  async close(): Promise<void> {
    this.handler = null
  }
}
