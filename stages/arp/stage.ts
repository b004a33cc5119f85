/**
 * ARP: answers requests for our address, learns bindings, releases frames parked on them.
 * Consumes: up: whole Ethernet frames of type 0x0806 (`off` at the Ethernet header).
 * Produces: down: ARP replies, built in place in the request's buffer (no allocation).
 * Drops:    'short' | 'not-for-us' | 'bad-hw-type' | 'bad-proto-type' | 'bad-op' |
 *           'bad-sender' | 'conflict' | 'from-below'
 * State:    none of its own: the interface's {@link ArpCache}.
 * Inspect:  stats() (extra: requests answered, replies received, bindings learned)
 * @module
 */
import { get16, get32, set16, set32 } from '../../core/bytes.js'
import type { Msg } from '../../core/msg.js'
import { Dir, Stage } from '../../core/stage.js'
import { ETH, macEquals, writeMac } from '../eth/header.js'
import type { ArpCache } from './cache.js'
import { ARP, ArpOp, checkArp } from './packet.js'

/** Drop reasons of {@link ArpStage}. */
export const ARP_DROPS = ['short', 'not-for-us', 'bad-hw-type', 'bad-proto-type', 'bad-op', 'bad-sender', 'conflict', 'from-below'] as const
/** One of {@link ARP_DROPS}. */
export type ArpDrop = (typeof ARP_DROPS)[number]

/** The ARP responder of one interface. */
export class ArpStage extends Stage {
  /** The interface's table. */
  readonly cache: ArpCache
  /** Requests for our address answered. */
  answered = 0
  /** Replies received (addressed to us). */
  repliesIn = 0
  /** Packets that created or refreshed a binding. */
  learned = 0

  /** Creates the responder over `cache`; `up` is the direction away from the device. */
  constructor(cache: ArpCache, up: Dir = Dir.Forward) {
    super('ARP', up)
    this.cache = cache
  }

  /** Handles one ARP frame. */
  deliver(msg: Msg, dir: Dir): void {
    if (dir !== this.up) return this.drop(msg, 'from-below')
    const b = msg.buf
    const e = msg.off
    if (msg.end - e < ETH.HLEN) return this.drop(msg, 'short')
    const c = this.cache
    if ((b[e]! & 1) === 0 && !macEquals(b, e, c.mac)) return this.drop(msg, 'not-for-us')
    const a = e + ETH.HLEN
    const bad = checkArp(b, a, msg.end)
    if (bad !== null) return this.drop(msg, bad)
    const spa = get32(b, a + ARP.SPA)
    const tpa = get32(b, a + ARP.TPA)
    // RFC 5227 §2.4: someone else claims our address; never learn it, count it.
    if (spa === c.ip && !macEquals(b, a + ARP.SHA, c.mac)) return this.drop(msg, 'conflict')
    // RFC 826 packet reception: merge the sender into an existing entry first ...
    let merged = false
    if (spa !== 0) merged = c.learn(spa, b, a + ARP.SHA, false)
    if (tpa !== c.ip) {
      if (merged) {
        this.learned++
        msg.free()
        return
      }
      return this.drop(msg, 'not-for-us')
    }
    // ... and, if we are the target, add it when it was not there.
    if (spa !== 0 && (merged || c.learn(spa, b, a + ARP.SHA, true))) this.learned++
    if (get16(b, a + ARP.OP) !== ArpOp.REQUEST) {
      this.repliesIn++
      msg.free()
      return
    }
    // RFC 826: swap sender and target, put in our addresses, set the opcode to reply.
    writeMac(b, e + ETH.DST, b.subarray(a + ARP.SHA, a + ARP.SHA + 6))
    writeMac(b, e + ETH.SRC, c.mac)
    b.copyWithin(a + ARP.THA, a + ARP.SHA, a + ARP.SHA + 6)
    set32(b, a + ARP.TPA, spa)
    writeMac(b, a + ARP.SHA, c.mac)
    set32(b, a + ARP.SPA, c.ip)
    set16(b, a + ARP.OP, ArpOp.REPLY)
    this.answered++
    this.send(msg, this.down)
  }

  /** Counters beyond the drops. */
  override extraStats(): Record<string, number> {
    return { answered: this.answered, repliesIn: this.repliesIn, learned: this.learned }
  }
}
