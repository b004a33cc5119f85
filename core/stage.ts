/**
 * Stage: a module's code plus one path's state (Scout's stage). A TCP stage holds one
 * connection's control block, an ETH stage one link's addresses.
 *
 * A stage sees messages travelling in both directions along its path. It knows nothing of
 * its neighbours: it hands a message on with {@link Stage.send} and the path finds the
 * next stage (or the path's end). Per-packet problems are drops ({@link Stage.drop}),
 * never exceptions.
 * @module
 */
import { debuglog } from 'node:util'
import type { Msg } from './msg.js'
import type { Path } from './path.js'

const log = debuglog('pathsplice')

/** The drop counters of every stage that has dropped nothing yet: one frozen, empty record, not one per stage. */
const NO_DROPS: Readonly<Record<string, number>> = Object.freeze(Object.create(null) as Record<string, number>)

/** Direction of travel along a path: 0 = forward (end 0 to end 1), 1 = backward. */
export type Dir = 0 | 1

/** Names for the two directions. */
export const Dir = Object.freeze({
  /** From end 0 towards end 1 (stage index increasing). */
  Forward: 0 as Dir,
  /** From end 1 towards end 0 (stage index decreasing). */
  Backward: 1 as Dir,
})

/** The opposite direction. */
export function reverse(dir: Dir): Dir {
  return (dir ^ 1) as Dir
}

/** A read-only snapshot of a stage's counters. */
export interface StageStats {
  /** Stage name within its path, e.g. `tcp#1`. */
  name: string
  /** Messages delivered into the stage travelling forward. */
  pktsForward: number
  /** Bytes delivered into the stage travelling forward. */
  bytesForward: number
  /** Messages delivered into the stage travelling backward. */
  pktsBackward: number
  /** Bytes delivered into the stage travelling backward. */
  bytesBackward: number
  /** Messages the stage originated (e.g. ACKs, retransmissions). */
  originated: number
  /** Drops by reason. */
  drops: Record<string, number>
  /** Stage-specific extra counters. */
  extra: Record<string, number | string | boolean>
}

/** The base class of every stage. Subclasses implement {@link Stage.deliver}. */
export abstract class Stage {
  /** Module name this stage belongs to (e.g. `TCP`); names the stage in dumps. */
  readonly kind: string
  /** Unique name within the path (`tcp#1`), assigned when the stage joins a path. */
  name: string
  /** The path this stage is linked into, or null when unlinked. */
  path: Path | null = null
  /** Position in the path (maintained by the path). */
  index = -1
  /**
   * The direction in which messages travel *up* the protocol stack through this stage.
   * An ETH stage next to end 0 sees incoming frames travelling forward (`up = Forward`),
   * one next to end 1 sees them travelling backward.
   */
  readonly up: Dir
  /** @internal Messages delivered into the stage travelling forward (written by the path). */
  pktsF = 0
  /** @internal Bytes delivered into the stage travelling forward. */
  bytesF = 0
  /** @internal Messages delivered into the stage travelling backward. */
  pktsB = 0
  /** @internal Bytes delivered into the stage travelling backward. */
  bytesB = 0
  /** Drops by reason, made by the first drop (a splice builds stages: each saves a dictionary it rarely needs). */
  private dropCounts: Record<string, number> | null = null
  /** Messages this stage originated rather than received. */
  originated = 0

  /** @param kind module name; @param up the direction that is "up the stack" for this stage. */
  constructor(kind: string, up: Dir = Dir.Forward) {
    this.kind = kind
    this.name = kind.toLowerCase()
    this.up = up
  }

  /** Drops by reason (read-only; only {@link Stage.drop} counts). */
  get drops(): Readonly<Record<string, number>> {
    return this.dropCounts ?? NO_DROPS
  }

  /** The direction down the protocol stack (towards the wire this stage sits above). */
  get down(): Dir {
    return (this.up ^ 1) as Dir
  }

  /** Processes one message travelling in `dir`. It must send, keep, or drop the message. */
  abstract deliver(msg: Msg, dir: Dir): void

  /** Hands `msg` to the next stage in `dir` (or the path's end). An unlinked stage drops it as `'unlinked'`. */
  send(msg: Msg, dir: Dir): void {
    const p = this.path
    if (p === null) {
      this.drop(msg, 'unlinked')
      return
    }
    p.pass(this.index, msg, dir)
  }

  /** Like {@link Stage.send}, for a message this stage created (counted as originated, run as a path entry). */
  originate(msg: Msg, dir: Dir): void {
    this.originated++
    const p = this.path
    if (p === null) {
      this.drop(msg, 'unlinked')
      return
    }
    p.originate(this, msg, dir)
  }

  /** Drops `msg` for `reason`: counts it, frees it, logs the first of each reason (all under NODE_DEBUG=pathsplice). */
  drop(msg: Msg, reason: string): void {
    let d = this.dropCounts
    if (d === null) d = this.dropCounts = Object.create(null) as Record<string, number>
    const n = (d[reason] ?? 0) + 1
    d[reason] = n
    if (n === 1 || log.enabled) {
      if (log.enabled || n === 1) log('%s/%s drop %s (#%d, %d bytes)', this.path?.name ?? '-', this.name, reason, n, msg.end - msg.off)
    }
    if (msg.live) msg.free()
  }

  /**
   * Hot-swap hook (Click's take_state): called on each new stage by {@link Path.replace}
   * while the path is between messages, with the run of stages being replaced. Take what
   * fits, ignore stages of other kinds, and push a warning for anything that could not be
   * carried over; never throw.
   */
  takeState?(old: readonly Stage[], warnings: string[]): void

  /** Called when the stage is linked into a path. */
  attached?(path: Path): void

  /** Called when the stage is unlinked from its path (replaced or path closed). */
  detached?(path: Path): void

  /** Stage-specific counters for {@link Stage.stats}. */
  extraStats(): Record<string, number | string | boolean> {
    return {}
  }

  /** One line describing the stage for path dumps (default: its name). */
  describe(): string {
    return this.name
  }

  /** A read-only snapshot of the stage's counters. */
  stats(): StageStats {
    return {
      name: this.name,
      pktsForward: this.pktsF,
      bytesForward: this.bytesF,
      pktsBackward: this.pktsB,
      bytesBackward: this.bytesB,
      originated: this.originated,
      drops: { ...this.drops },
      extra: this.extraStats(),
    }
  }

  /** Zeroes the counters (the `reset` control). */
  resetStats(): void {
    this.pktsF = this.bytesF = this.pktsB = this.bytesB = 0
    this.originated = 0
    const d = this.dropCounts
    if (d !== null) for (const k of Object.keys(d)) delete d[k]
  }
}

/** A stage that passes every message on unchanged (tests, benchmarks, placeholders). */
export class PassStage extends Stage {
  /** @param kind name to show in dumps (default `PASS`). */
  constructor(kind = 'PASS', up: Dir = Dir.Forward) {
    super(kind, up)
  }
  /** Sends the message on in the same direction. */
  deliver(msg: Msg, dir: Dir): void {
    this.send(msg, dir)
  }
}
