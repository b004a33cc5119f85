/**
 * Live capture and injection on a network interface through libpcap, via the optional npm
 * package `pcap` (node_pcap; it builds against Debian's libpcap-dev). Captured frames are
 * received in batches like any device's; `send` injects frames with pcap_inject(3PCAP).
 *
 * Semantics worth knowing (pcap(3PCAP)): a capture sees both directions of the interface,
 * including the frames this device injects; the BPF `filter` (pcap-filter(7)) runs in the
 * kernel. Capture uses immediate mode, so frames arrive without buffering delay.
 * @module
 */
import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import type { Device, DeviceOffloads, DeviceStats, ReceiveHandler } from '../../core/device.js'
import { NO_OFFLOADS } from '../../core/device.js'
import { DeviceError } from '../../core/errors.js'
import { allocMsg } from '../../core/msg.js'
import type { Msg } from '../../core/msg.js'
import type { Clock } from '../../core/clock.js'
import { parseMac } from '../../core/bytes.js'

/** The part of node_pcap's API we use (its own typings are partial). */
export interface PcapModule {
  /** Opens a live capture session. */
  createSession(device: string, options: { filter?: string; buffer_size?: number; snap_length?: number; buffer_timeout?: number; promiscuous?: boolean }): PcapSessionLike
}

/** libpcap's counters (pcap_stats(3PCAP)). */
export interface PcapStats {
  /** Packets received by the filter. */
  ps_recv: number
  /** Packets dropped because the capture buffer was full. */
  ps_drop: number
  /** Packets dropped by the interface or its driver (not always supported). */
  ps_ifdrop: number
}

/** A node_pcap capture session. */
export interface PcapSessionLike {
  /** `'LINKTYPE_ETHERNET'` for Ethernet interfaces. */
  readonly link_type: string
  /** `packet` events carry `{ buf, header }`: `buf` is reused for every packet; header = tv_sec, tv_usec, caplen, len (u32 LE). */
  on(event: 'packet', listener: (p: { buf: Buffer; header: Buffer }) => void): unknown
  /** Injects one frame. */
  inject(data: Buffer): unknown
  /** Counters from libpcap. */
  stats(): PcapStats
  /** Ends the session. */
  close(): void
}

/** Options of {@link openLive}. */
export interface LiveOptions {
  /** BPF filter in pcap-filter(7) syntax (default: everything). */
  filter?: string
  /** Snapshot length (default 65535). */
  snaplen?: number
  /** Promiscuous mode (default false: only frames for this host, broadcast and multicast). */
  promiscuous?: boolean
  /** Kernel capture buffer in bytes (default 4 MiB). */
  bufferSize?: number
  /** Most frames per receive batch (default 64). */
  batchSize?: number
  /** Stamps `msg.rxTime` (default `performance.now()`). */
  clock?: Clock
  /** `msg.ingress` of captured frames (default -1). */
  ingress?: number
  /** Loads the `pcap` module (default: `import('pcap')`); tests replace it. */
  loader?: () => Promise<PcapModule>
}

/** Loads the optional `pcap` package, or explains how to get it. */
export async function loadPcapModule(): Promise<PcapModule> {
  const name = 'pcap' // a variable, so TypeScript does not need the optional package to compile
  try {
    const mod = (await import(name)) as { default?: PcapModule } & PcapModule
    return mod.default ?? mod
  } catch (err) {
    throw missingPcapError(err)
  }
}

/** The error for a missing or unbuildable `pcap` package. */
export function missingPcapError(cause: unknown): DeviceError {
  return new DeviceError(
    'live capture needs the optional npm package `pcap` (node_pcap) and libpcap: apt-get install libpcap-dev && npm install pcap' +
      ` (it did not load: ${(cause as Error)?.message ?? String(cause)})`,
    { cause },
  )
}

/** A network interface captured and injected into through libpcap. Implements {@link Device}. */
export class PcapLiveDevice implements Device {
  /** Interface name. */
  readonly name: string
  /** MTU of the interface (from sysfs; 1500 if unknown). */
  readonly mtu: number
  /** MAC address of the interface (from sysfs; zeros if unknown). */
  readonly mac: Uint8Array
  /** No offloads: libpcap hands over plain frames. */
  readonly offloads: DeviceOffloads = NO_OFFLOADS
  private readonly session: PcapSessionLike
  private handler: ReceiveHandler | null = null
  private readonly pending: Msg[] = []
  private flushScheduled = false
  private closed = false
  private readonly batchSize: number
  private readonly clock: Clock
  private readonly ingress: number
  private readonly counters = { rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0 }
  private readonly drops: Record<string, number> = { 'no-handler': 0, 'tx-error': 0, closed: 0, truncated: 0 }

  /** Wraps an open session (use {@link openLive}). */
  constructor(name: string, session: PcapSessionLike, opts: LiveOptions = {}) {
    this.name = name
    this.session = session
    this.batchSize = Math.max(1, opts.batchSize ?? 64)
    this.clock = opts.clock ?? performance
    this.ingress = opts.ingress ?? -1
    this.mtu = Number(readSys(name, 'mtu') ?? 1500) || 1500
    const addr = readSys(name, 'address')
    let mac: Uint8Array = new Uint8Array(6)
    try {
      if (addr) mac = parseMac(addr)
    } catch {
      // not an Ethernet address: keep zeros
    }
    this.mac = mac
    session.on('packet', p => this.onPacket(p.buf, p.header))
  }

  /** Injects `batch[0..count)` (one pcap_inject per frame) and frees them. */
  send(batch: Msg[], count: number): void {
    for (let i = 0; i < count; i++) {
      const m = batch[i]!
      if (this.closed) {
        this.drops['closed']!++
      } else {
        try {
          this.session.inject(Buffer.from(m.buf.buffer, m.buf.byteOffset + m.off, m.end - m.off))
          this.counters.txFrames++
          this.counters.txBytes += m.end - m.off
        } catch {
          this.drops['tx-error']!++
        }
      }
      m.free()
    }
  }

  /** Installs the receive handler (null drops captured frames as `no-handler`). */
  onReceive(handler: ReceiveHandler | null): void {
    this.handler = handler
  }

  /** Counters, plus libpcap's own drop count as `drops['pcap-kernel']`. */
  stats(): DeviceStats {
    const drops = { ...this.drops }
    if (!this.closed) {
      try {
        drops['pcap-kernel'] = this.session.stats().ps_drop
      } catch {
        // some platforms have no stats
      }
    }
    return { ...this.counters, drops }
  }

  /** Ends the capture session; frames still pending are dropped as `closed`; idempotent. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.session.close()
    for (const m of this.pending) m.free()
    this.drops['closed']! += this.pending.length
    this.pending.length = 0
  }

  private onPacket(buf: Buffer, header: Buffer): void {
    if (this.closed) return
    // node_pcap reuses `buf` for every packet: copy the captured bytes out now.
    const caplen = header.readUInt32LE(8)
    const len = Math.min(caplen, buf.length)
    if (header.readUInt32LE(12) > len) this.drops['truncated']!++
    const m = allocMsg(len)
    m.buf.set(buf.subarray(0, len), m.off)
    m.end = m.off + len
    m.ingress = this.ingress
    m.rxTime = this.clock.now()
    this.pending.push(m)
    // Each poll wake-up yields one packet; gather what arrives in one loop turn into a batch.
    if (this.pending.length >= this.batchSize) this.flush()
    else if (!this.flushScheduled) {
      this.flushScheduled = true
      setImmediate(() => this.flush())
    }
  }

  private flush(): void {
    this.flushScheduled = false
    const n = this.pending.length
    if (n === 0) return
    const batch = this.pending.splice(0, n)
    const h = this.handler
    if (h === null) {
      for (const m of batch) m.free()
      this.drops['no-handler']! += n
      return
    }
    this.counters.rxFrames += n
    for (const m of batch) this.counters.rxBytes += m.end - m.off
    h(batch, n)
  }
}

function readSys(iface: string, file: string): string | null {
  try {
    return readFileSync(`/sys/class/net/${iface}/${file}`, 'utf8').trim()
  } catch {
    return null
  }
}

/**
 * Opens a live capture on `iface` (in this process's network namespace).
 * @throws DeviceError if the `pcap` package is missing, or libpcap cannot open the interface (the message says why).
 */
export async function openLive(iface: string, opts: LiveOptions = {}): Promise<PcapLiveDevice> {
  const mod = await (opts.loader ?? loadPcapModule)()
  let session: PcapSessionLike
  try {
    session = mod.createSession(iface, {
      filter: opts.filter ?? '',
      snap_length: opts.snaplen ?? 65535,
      buffer_size: opts.bufferSize ?? 4 << 20,
      buffer_timeout: 0, // immediate mode: no batching delay in the kernel
      promiscuous: opts.promiscuous ?? false,
    })
  } catch (err) {
    throw new DeviceError(`pcap: cannot capture on '${iface}': ${(err as Error).message}`, { cause: err })
  }
  if (session.link_type !== 'LINKTYPE_ETHERNET') {
    session.close()
    throw new DeviceError(`pcap: '${iface}' has link type ${session.link_type}; pathsplice devices carry Ethernet frames`)
  }
  return new PcapLiveDevice(iface, session, opts)
}
