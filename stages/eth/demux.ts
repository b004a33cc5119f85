/**
 * The EtherType level of a classifier tree.
 * @module
 */
import { FieldDemux, type ClassifierNode } from '../../core/classifier.js'
import { get16 } from '../../core/bytes.js'
import type { Msg } from '../../core/msg.js'
import type { PathEnd } from '../../core/path.js'
import { ETH, EtherType } from './header.js'

/** A {@link FieldDemux} keyed by the EtherType at `off + 12` (-1 for frames shorter than 14 bytes). */
export function ethTypeDemux(name = 'ETH type'): FieldDemux {
  return new FieldDemux(name, {
    key: (b, off, end) => (end - off < ETH.HLEN ? -1 : get16(b, off + ETH.TYPE)),
    next: (_b, off) => off + ETH.HLEN,
    format: k => `0x${k.toString(16).padStart(4, '0')}`,
  })
}

/** Frames no path claims at the EtherType level, by kind. */
export interface EthTypeCounters {
  /** 802.1Q / 802.1ad tagged frames (we run no VLANs: dropped on purpose). */
  vlan: number
  /** IPv6 (not implemented). */
  ipv6: number
  /** 802.3 frames whose type field is a length (< 0x0600), e.g. LLC/STP. */
  lengthField: number
  /** Any other EtherType. */
  other: number
}

/**
 * The default of an EtherType demux: claims nothing, counts what it refuses by kind, so
 * VLAN-tagged frames are a deliberate, visible drop rather than an anonymous miss.
 * Called by {@link FieldDemux} with `off` just past the Ethernet header.
 */
export class EthTypeDropCounter implements ClassifierNode {
  /** Name in dumps. */
  readonly name = 'unclaimed EtherTypes (counted, dropped)'
  /** Counters by kind. */
  readonly counters: EthTypeCounters = { vlan: 0, ipv6: 0, lengthField: 0, other: 0 }
  private readonly demux: FieldDemux | null

  /** `demux`: the EtherType level this counter is the default of (types it handles are not counted here). */
  constructor(demux: FieldDemux | null = null) {
    this.demux = demux
  }

  /** Counts the frame's EtherType (the two bytes before `off`) and returns null. */
  classify(msg: Msg, off: number): PathEnd | null {
    const t = off >= 2 && off <= msg.end ? get16(msg.buf, off - 2) : -1
    // A handled type whose subtree refused the frame counted it there (FieldDemux falls back here too).
    if (this.demux !== null && t >= 0 && this.demux.get(t) !== undefined) return null
    const c = this.counters
    if (t === EtherType.VLAN || t === EtherType.QINQ) c.vlan++
    else if (t === EtherType.IPv6) c.ipv6++
    else if (t >= 0 && t < 0x0600) c.lengthField++
    else c.other++
    return null
  }

  /** Dumps the counters. */
  describe(indent: string, out: string[]): void {
    const c = this.counters
    out.push(`${indent}${this.name}: vlan ${c.vlan}, ipv6 ${c.ipv6}, 802.3-length ${c.lengthField}, other ${c.other}`)
  }
}
