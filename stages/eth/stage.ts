/**
 * ETH: the Ethernet II stage of one interface.
 * Consumes: up: a frame with `off` at the Ethernet header (from the device side);
 *           down: a datagram with `off` at the network header and `msg.nextHop` set to
 *           the next hop's IPv4 address (0xffffffff for broadcast).
 * Produces: up: the payload (`off` past the 14-byte header) of the configured EtherType;
 *           down: the frame with our MAC as source and the next hop's MAC (ARP cache) as
 *           destination, or the frame parked in ARP's bounded pending queue while a
 *           request goes out. No allocation.
 * Drops:    'short' | 'not-for-us' | 'vlan' | 'wrong-type' | 'no-headroom' | 'arp-failed' | 'arp-table-full'
 * State:    our MAC, the EtherType, the interface's ARP cache.
 * Inspect:  stats()
 * @module
 */
import type { Msg } from '../../core/msg.js'
import { Dir, Stage } from '../../core/stage.js'
import type { ArpCache } from '../arp/cache.js'
import { BROADCAST_MAC, ETH, EtherType, macEquals, writeMac } from './header.js'

/** Drop reasons of {@link EthStage}. */
export const ETH_DROPS = ['short', 'not-for-us', 'vlan', 'wrong-type', 'no-headroom', 'arp-failed', 'arp-table-full'] as const
/** One of {@link ETH_DROPS}. */
export type EthDrop = (typeof ETH_DROPS)[number]

/** Options of an {@link EthStage}. */
export interface EthStageOptions {
  /** Our MAC (source of frames we send; frames to other unicast MACs are dropped). */
  mac: Uint8Array
  /** EtherType this stage carries (default IPv4). */
  type?: number
  /** The interface's ARP cache, resolving `msg.nextHop` downwards. */
  arp: ArpCache
  /** Direction that is up the stack (default Forward: end 0 faces the device). */
  up?: Dir
}

/** The Ethernet stage. */
export class EthStage extends Stage {
  /** Our MAC. */
  readonly mac: Uint8Array
  /** The EtherType carried. */
  readonly type: number
  /** ARP cache used downwards. */
  readonly arp: ArpCache
  private readonly typeHi: number
  private readonly typeLo: number
  /** One-entry cache of the last resolution, valid while the ARP table's version is unchanged. */
  private lastHop = -1
  private lastMac: Uint8Array | null = null
  private lastVersion = -1

  /** Creates the stage; see {@link EthStageOptions}. */
  constructor(opts: EthStageOptions) {
    super('ETH', opts.up ?? Dir.Forward)
    this.mac = opts.mac
    this.type = opts.type ?? EtherType.IPv4
    this.arp = opts.arp
    this.typeHi = this.type >>> 8
    this.typeLo = this.type & 0xff
  }

  /** Strips the header going up, adds it going down. */
  deliver(msg: Msg, dir: Dir): void {
    if (dir === this.up) this.receive(msg, dir)
    else this.transmit(msg, dir)
  }

  private receive(msg: Msg, dir: Dir): void {
    const b = msg.buf
    const o = msg.off
    if (msg.end - o < ETH.HLEN) return this.drop(msg, 'short')
    // IEEE 802.3 clause 3.2.3: accept our unicast address and group addresses only.
    if ((b[o]! & 1) === 0 && !macEquals(b, o, this.mac)) return this.drop(msg, 'not-for-us')
    const th = b[o + ETH.TYPE]!
    const tl = b[o + ETH.TYPE + 1]!
    if (th !== this.typeHi || tl !== this.typeLo) {
      // 802.1Q / 802.1ad tagged frames: we run no VLANs, so a tag is deliberately refused.
      const t = (th << 8) | tl
      return this.drop(msg, t === EtherType.VLAN || t === EtherType.QINQ ? 'vlan' : 'wrong-type')
    }
    msg.off = o + ETH.HLEN
    this.send(msg, dir)
  }

  private transmit(msg: Msg, dir: Dir): void {
    if (msg.off < ETH.HLEN) return this.drop(msg, 'no-headroom')
    const o = (msg.off -= ETH.HLEN)
    const b = msg.buf
    writeMac(b, o + ETH.SRC, this.mac)
    b[o + ETH.TYPE] = this.typeHi
    b[o + ETH.TYPE + 1] = this.typeLo
    const nh = msg.nextHop >>> 0
    if (nh === 0xffffffff) {
      writeMac(b, o, BROADCAST_MAC)
      return this.send(msg, dir)
    }
    const arp = this.arp
    if (nh === this.lastHop && arp.version === this.lastVersion) {
      writeMac(b, o, this.lastMac!)
      return this.send(msg, dir)
    }
    const mac = arp.lookup(nh)
    if (mac !== null) {
      this.lastHop = nh
      this.lastMac = mac
      this.lastVersion = arp.version
      writeMac(b, o, mac)
      return this.send(msg, dir)
    }
    // RFC 1122 §2.3.2.2: queue (bounded) while ARP resolves; the cache sends it later.
    const refused = this.arp.park(msg, nh)
    if (refused !== null) this.drop(msg, refused)
  }

  /** `ETH(02:00:..)` for path dumps. */
  override describe(): string {
    return `${this.name}(${this.type.toString(16).padStart(4, '0')})`
  }
}
