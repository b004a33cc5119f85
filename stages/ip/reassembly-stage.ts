/**
 * REASM: reassembles the IPv4 fragments of one interface, then hands each whole
 * datagram back to the classifier (fragments after the first carry no ports, so they
 * can only be classified once whole; Scout's IP module does the same).
 * Consumes: up: Ethernet frames carrying an IPv4 fragment (`off` at the Ethernet header).
 * Produces: nothing on the path: completed datagrams, with the Ethernet header of their
 *           last fragment in front, go to `reinject` (the interface's classifier).
 * Drops:    'short' | IPv4 header errors | 'not-a-fragment' | 'overlap' |
 *           'duplicate-fragment' | 'bad-fragment' | 'too-big' | 'reassembly-full' | 'from-above'
 * State:    a shared {@link Reassembler} (memory bound and timeout across interfaces).
 * Inspect:  stats() (extra: datagramsOut)
 * @module
 */
import type { Msg } from '../../core/msg.js'
import { Dir, Stage } from '../../core/stage.js'
import { ETH } from '../eth/header.js'
import { IP, IP_HEADER_ERRORS, checkIpv4, isFragment } from './header.js'
import { get16 } from '../../core/bytes.js'
import { REASSEMBLY_DROPS, type Reassembler } from './reassembly.js'

/** Drop reasons of {@link ReassemblyStage}. */
export const REASM_DROPS = ['short', ...IP_HEADER_ERRORS, 'not-a-fragment', ...REASSEMBLY_DROPS, 'from-above'] as const
/** One of {@link REASM_DROPS}. */
export type ReasmDrop = (typeof REASM_DROPS)[number]

/** The reassembly stage of one interface. */
export class ReassemblyStage extends Stage {
  /** Datagrams completed and re-injected. */
  datagramsOut = 0
  private readonly reassembler: Reassembler
  private readonly reinject: (datagram: Msg) => void
  private readonly eth = new Uint8Array(ETH.HLEN)

  /** Creates the stage over a shared `reassembler`; `reinject` takes each whole datagram (with an Ethernet header) and owns it. */
  constructor(reassembler: Reassembler, reinject: (datagram: Msg) => void, up: Dir = Dir.Forward) {
    super('REASM', up)
    this.reassembler = reassembler
    this.reinject = reinject
  }

  /** Adds one fragment. */
  deliver(msg: Msg, dir: Dir): void {
    if (dir !== this.up) return this.drop(msg, 'from-above')
    const b = msg.buf
    const e = msg.off
    if (msg.end - e < ETH.HLEN) return this.drop(msg, 'short')
    const o = e + ETH.HLEN
    const h = checkIpv4(b, o, msg.end)
    if (typeof h === 'string') return this.drop(msg, h)
    if (!isFragment(b, o)) return this.drop(msg, 'not-a-fragment')
    msg.end = o + get16(b, o + IP.LEN)
    this.eth.set(b.subarray(e, o))
    msg.off = o
    const ingress = msg.ingress
    const rxTime = msg.rxTime
    const r = this.reassembler.add(msg, h)
    if (r === null) return
    if (typeof r === 'string') {
      msg.off = e
      return this.drop(msg, r)
    }
    r.off -= ETH.HLEN
    r.buf.set(this.eth, r.off)
    r.ingress = ingress
    r.rxTime = rxTime
    r.l3 = -1
    this.datagramsOut++
    this.reinject(r)
  }

  /** Counters beyond the drops. */
  override extraStats(): Record<string, number> {
    return { datagramsOut: this.datagramsOut }
  }
}
