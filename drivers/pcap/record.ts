/**
 * Recording: tee the frames a device receives and sends into a `.pcap` file, without
 * changing what the path sees (in the spirit of smoltcp's `PcapWriter` phy wrapper).
 *
 * ```
 *   path ──send──▶ RecordingDevice ──(write to pcap)──▶ inner.send
 *   path ◀─handler─ RecordingDevice ◀─(write to pcap)── inner's receive batches
 * ```
 * A path is recorded by wrapping the devices it runs on. Frames are written before they
 * are handed on (send frees them), so the file order is the order the wrapper saw them.
 * @module
 */
import type { Device, DeviceOffloads, DeviceStats, ReceiveHandler } from '../../core/device.js'
import type { Msg } from '../../core/msg.js'
import { PcapWriter } from './pcap-file.js'
import type { PcapWriterOptions } from './pcap-file.js'

/** Options of {@link recordDevice}. */
export interface RecordOptions extends PcapWriterOptions {
  /** Record received frames (default true). */
  rx?: boolean
  /** Record sent frames (default true). */
  tx?: boolean
  /** Close the wrapped device when the recorder is closed (default true). */
  closeDevice?: boolean
}

/**
 * A {@link Device} around another one: name, MTU, MAC, offloads and counters are the
 * wrapped device's; subclasses say what `send`, `onReceive` and `close` add.
 */
export abstract class DeviceWrapper implements Device {
  /** The wrapped device. */
  readonly inner: Device

  /** Wraps `inner`. */
  constructor(inner: Device) {
    this.inner = inner
  }

  /** The wrapped device's name. */
  get name(): string {
    return this.inner.name
  }
  /** The wrapped device's MTU. */
  get mtu(): number {
    return this.inner.mtu
  }
  /** The wrapped device's MAC address. */
  get mac(): Uint8Array {
    return this.inner.mac
  }
  /** The wrapped device's offloads. */
  get offloads(): DeviceOffloads {
    return this.inner.offloads
  }

  /** The wrapped device's counters. */
  stats(): DeviceStats {
    return this.inner.stats()
  }

  /** Sends `batch[0..count)` (through the wrapped device). */
  abstract send(batch: Msg[], count: number): void
  /** Installs the receive handler (on the wrapped device). */
  abstract onReceive(handler: ReceiveHandler | null): void
  /** Closes the wrapper (and, as the subclass says, the wrapped device). */
  abstract close(): Promise<void>
}

/** A {@link Device} that records the traffic of another one; everything else is delegated. */
export class RecordingDevice extends DeviceWrapper {
  /** The capture file being written. */
  readonly writer: PcapWriter
  private readonly rx: boolean
  private readonly tx: boolean
  private readonly closeDevice: boolean
  private closed = false

  /** Wraps `inner`, writing to `writer` (prefer {@link recordDevice}). */
  constructor(inner: Device, writer: PcapWriter, opts: RecordOptions = {}) {
    super(inner)
    this.writer = writer
    this.rx = opts.rx ?? true
    this.tx = opts.tx ?? true
    this.closeDevice = opts.closeDevice ?? true
  }


  /** Records `batch[0..count)` (if tx is on), then sends it through the wrapped device. */
  send(batch: Msg[], count: number): void {
    if (this.tx && this.writer.open) {
      for (let i = 0; i < count; i++) this.writer.writeMsg(batch[i]!)
    }
    this.inner.send(batch, count)
  }

  /** Installs `handler` on the wrapped device, recording each batch (if rx is on) before it. */
  onReceive(handler: ReceiveHandler | null): void {
    if (handler === null || !this.rx) {
      this.inner.onReceive(handler)
      return
    }
    const w = this.writer
    this.inner.onReceive((batch, count) => {
      if (w.open) for (let i = 0; i < count; i++) w.writeMsg(batch[i]!)
      handler(batch, count)
    })
  }

  /** Writes buffered records to the file (the recording keeps going). */
  flush(): void {
    this.writer.flush()
  }

  /** Closes the capture file and (unless `closeDevice: false`) the wrapped device; idempotent. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.writer.close()
    if (this.closeDevice) await this.inner.close()
  }
}

/** Records `device`'s received and sent frames into the `.pcap` file at `path`. */
export function recordDevice(device: Device, path: string, opts: RecordOptions = {}): RecordingDevice {
  return new RecordingDevice(device, new PcapWriter(path, opts), opts)
}
