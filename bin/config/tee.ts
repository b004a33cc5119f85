/**
 * TeeDevice: the wrapper `pathsplice run` puts around every device, so a running
 * forwarder can start and stop a pcap recording of it (`pathsplice record`) and take
 * replayed frames as if the device had received them (`pathsplice replay`).
 * Costs one call per batch when idle; no per-packet work unless recording.
 * @module
 */
import type { Device, ReceiveHandler } from '../../core/device.js'
import type { Msg } from '../../core/msg.js'
import { PcapWriter } from '../../drivers/pcap/pcap-file.js'
import { DeviceWrapper } from '../../drivers/pcap/record.js'

/** A recording in progress. */
interface Recording {
  writer: PcapWriter
  frames: number
  limit: number
  done: (frames: number) => void
  timer: NodeJS.Timeout | null
}

/** See the module comment. */
export class TeeDevice extends DeviceWrapper {
  private handler: ReceiveHandler | null = null
  private rec: Recording | null = null

  /** Wraps `inner`. */
  constructor(inner: Device) {
    super(inner)
  }

  /** Sends through the wrapped device (recording first, if on). */
  send(batch: Msg[], count: number): void {
    if (this.rec !== null) this.write(batch, count)
    this.inner.send(batch, count)
  }

  /** Installs the handler (received and replayed frames go to it). */
  onReceive(handler: ReceiveHandler | null): void {
    this.handler = handler
    this.inner.onReceive(handler === null ? null : (batch, count) => {
      if (this.rec !== null) this.write(batch, count)
      handler(batch, count)
    })
  }

  /** Hands replayed frames to the path as received frames (ownership passes). */
  inject(batch: Msg[], count: number): void {
    if (this.handler === null) {
      for (let i = 0; i < count; i++) batch[i]!.free()
      return
    }
    if (this.rec !== null) this.write(batch, count)
    this.handler(batch, count)
  }

  /** True while recording. */
  get recording(): boolean {
    return this.rec !== null
  }

  /**
   * Records received and sent frames into `file` until `frames` were written or `ms`
   * passed (whichever first; 0 = no limit of that kind); resolves with the frame count.
   * Throws if a recording is already running.
   */
  record(file: string, opts: { frames?: number; ms?: number }): Promise<number> {
    if (this.rec !== null) throw new Error(`device ${this.name} is already being recorded`)
    const writer = new PcapWriter(file)
    return new Promise(resolve => {
      const rec: Recording = { writer, frames: 0, limit: opts.frames ?? 0, done: resolve, timer: null }
      this.rec = rec
      if ((opts.ms ?? 0) > 0) rec.timer = setTimeout(() => this.stopRecording(), opts.ms)
    })
  }

  /** Ends the recording (if any) and closes its file. */
  stopRecording(): void {
    const r = this.rec
    if (r === null) return
    this.rec = null
    if (r.timer !== null) clearTimeout(r.timer)
    r.writer.close()
    r.done(r.frames)
  }

  private write(batch: Msg[], count: number): void {
    const r = this.rec!
    for (let i = 0; i < count; i++) {
      r.writer.writeMsg(batch[i]!)
      if (++r.frames === r.limit) {
        this.stopRecording()
        return
      }
    }
  }

  /** Stops a recording and closes the wrapped device. */
  async close(): Promise<void> {
    this.stopRecording()
    await this.inner.close()
  }
}
