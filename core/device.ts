/**
 * Device: where frames enter and leave pathsplice. The memory wire, TAP and pcap drivers
 * all implement this, so every path runs unchanged on each.
 *
 * Ownership: `send` takes ownership of the Msgs it is given (the device frees them once
 * written); the receive handler takes ownership of the Msgs it is handed (it must free or
 * forward each one). Both move whole batches, so a native driver crosses the JS boundary
 * once per batch, never once per frame.
 * @module
 */
import type { Msg } from './msg.js'

/** Offloads a device can do for us (TAP with IFF_VNET_HDR + TUNSETOFFLOAD). */
export interface DeviceOffloads {
  /** Frames carry a virtio-net header ({@link Msg.vnet}); checksums may be left partial. */
  vnetHdr: boolean
  /** TCPv4 segmentation offload: super-frames up to 64 KiB may be sent and received. */
  tso: boolean
}

/** Counters every device keeps. */
export interface DeviceStats {
  /** Frames handed to the receive handler. */
  rxFrames: number
  /** Bytes handed to the receive handler. */
  rxBytes: number
  /** Frames written out. */
  txFrames: number
  /** Bytes written out. */
  txBytes: number
  /** Frames dropped, by reason (e.g. `'no-handler'`, `'queue-full'`, `'oversize'`). */
  drops: Record<string, number>
}

/** Receives a batch of frames: `batch[0..count)`; ownership of each Msg passes to the handler. */
export type ReceiveHandler = (batch: Msg[], count: number) => void

/** A network device. */
export interface Device {
  /** Name, unique among the devices of one forwarder (e.g. `tap0`, `mem0`). */
  readonly name: string
  /** Largest frame payload (IP datagram) in bytes, excluding the Ethernet header. */
  readonly mtu: number
  /** The device's MAC address (6 bytes). */
  readonly mac: Uint8Array
  /** Offloads in effect. */
  readonly offloads: DeviceOffloads
  /** Sends `batch[0..count)`; takes ownership of those Msgs. The array itself stays the caller's. */
  send(batch: Msg[], count: number): void
  /** Installs the receive handler (replacing any previous one). Frames arriving with no handler are dropped and counted. */
  onReceive(handler: ReceiveHandler | null): void
  /** A snapshot of the device's counters. */
  stats(): DeviceStats
  /** Stops receiving and releases the device's resources; idempotent. */
  close(): Promise<void>
}

/** No offloads: plain Ethernet frames. */
export const NO_OFFLOADS: DeviceOffloads = Object.freeze({ vnetHdr: false, tso: false })
