/**
 * Classifier: maps every arriving frame to exactly one path end, by a demux tree that the
 * modules contribute (ETH type, then IP protocol, then the TCP 4-tuple ...). Each level
 * reads one header field and does one hash lookup, so the cost is constant per level.
 * Unmatched traffic goes to the nearest default on the way down, else the classifier's.
 *
 * ```
 *   ETH type ──0x0806──▶ arp path
 *      │ 0x0800
 *      ▼
 *   IP proto ──1──▶ icmp path
 *      │ 6
 *      ▼
 *   TCP flow ──(10.0.0.1:80, 10.0.0.2:4242)──▶ conn path (spliced or not: same key)
 *      └─ default ──▶ listener path (creates paths on SYN)
 * ```
 * @module
 */
import type { Msg } from './msg.js'
import { PathEnd } from './path.js'

/** A node of the demux tree. `off` is where this node's header starts in `msg.buf`. */
export interface ClassifierNode {
  /** Name shown in dumps (e.g. `ETH type`). */
  readonly name: string
  /** Returns the end the message belongs to, or null when neither it nor a default matches. */
  classify(msg: Msg, off: number): PathEnd | null
  /** Appends this node's subtree to `out`, one line per entry, indented by `indent`. */
  describe(indent: string, out: string[]): void
}

/** A child of a {@link FieldDemux}: a deeper node or a path end. */
export type DemuxTarget = ClassifierNode | PathEnd

/** How a {@link FieldDemux} reads its key and finds the next header. */
export interface FieldSpec {
  /** Reads the key at this level (e.g. the EtherType at `off + 12`); -1 if the header is too short. */
  key(buf: Uint8Array, off: number, end: number): number
  /** Offset of the next level's header (e.g. `off + 14` after Ethernet). */
  next(buf: Uint8Array, off: number): number
  /** Formats a key for dumps (default: decimal). */
  format?(key: number): string
}

function targetName(t: DemuxTarget): string {
  return t instanceof PathEnd ? `-> ${t.name}` : ''
}

/** One level of the tree: reads a numeric field and looks it up. */
export class FieldDemux implements ClassifierNode {
  /** Name shown in dumps. */
  readonly name: string
  /** Target for keys with no entry (null: fall through to the parent's default). */
  fallback: DemuxTarget | null = null
  private readonly table = new Map<number, DemuxTarget>()
  private readonly spec: FieldSpec
  /**
   * The last key looked up and what it found (a path end, a deeper node, or neither): a
   * level sees the same key frame after frame (IPv4 at the EtherType level, TCP at the
   * protocol level), and one compare is cheaper than a Map lookup and an `instanceof`.
   * Only {@link FieldDemux.set} and {@link FieldDemux.delete} change the table, and both
   * forget it.
   */
  private memoKey = -1
  private memoEnd: PathEnd | null = null
  private memoNode: ClassifierNode | null = null

  /** Creates a demux level named `name` reading its key as `spec` says. */
  constructor(name: string, spec: FieldSpec) {
    this.name = name
    this.spec = spec
  }

  /** Routes `key` to `target` (replacing any previous entry). */
  set(key: number, target: DemuxTarget): this {
    this.table.set(key, target)
    this.forget()
    return this
  }

  /** Removes the entry for `key`. */
  delete(key: number): boolean {
    this.forget()
    return this.table.delete(key)
  }

  private forget(): void {
    this.memoKey = -1
    this.memoEnd = null
    this.memoNode = null
  }

  private remember(key: number): void {
    const t = key < 0 ? undefined : this.table.get(key)
    this.memoKey = key
    this.memoEnd = t instanceof PathEnd ? t : null
    this.memoNode = t === undefined || t instanceof PathEnd ? null : t
  }

  /** The entry for `key`, if any. */
  get(key: number): DemuxTarget | undefined {
    return this.table.get(key)
  }

  /** Sets the default target for unmatched keys. */
  setDefault(target: DemuxTarget | null): this {
    this.fallback = target
    return this
  }

  /** Looks the message up at this level and below. */
  classify(msg: Msg, off: number): PathEnd | null {
    const key = this.spec.key(msg.buf, off, msg.end)
    if (key !== this.memoKey) this.remember(key)
    const e = this.memoEnd
    if (e !== null) return e
    const n = this.memoNode
    if (n !== null) {
      const r = n.classify(msg, this.spec.next(msg.buf, off))
      if (r !== null) return r
    }
    const d = this.fallback
    if (d === null) return null
    if (d instanceof PathEnd) return d
    return d.classify(msg, this.spec.next(msg.buf, off))
  }

  /** Dumps this level. */
  describe(indent: string, out: string[]): void {
    out.push(`${indent}${this.name}`)
    const fmt = this.spec.format ?? ((k: number) => String(k))
    for (const [k, t] of this.table) {
      out.push(`${indent}  ${fmt(k)} ${targetName(t)}`.trimEnd())
      if (!(t instanceof PathEnd)) t.describe(indent + '    ', out)
    }
    if (this.fallback !== null) {
      out.push(`${indent}  default ${targetName(this.fallback)}`.trimEnd())
      if (!(this.fallback instanceof PathEnd)) this.fallback.describe(indent + '    ', out)
    }
  }
}

/** Counters of a {@link Classifier}. */
export interface ClassifierStats {
  /** Frames matched by the tree. */
  matched: number
  /** Frames sent to the classifier's default end. */
  defaulted: number
  /** Frames that matched nothing and had no default (dropped by the caller). */
  unmatched: number
}

/** The root of a demux tree plus a default end for everything else. */
export class Classifier {
  /** Name shown in dumps. */
  readonly name: string
  /** The first level (e.g. the ETH type demux), or null. */
  root: ClassifierNode | null
  /** Where unmatched frames go (null: the caller drops them). */
  fallback: PathEnd | null
  private readonly counters: ClassifierStats = { matched: 0, defaulted: 0, unmatched: 0 }

  /** Creates a classifier over `root` with `fallback` for unmatched frames. */
  constructor(name: string, root: ClassifierNode | null = null, fallback: PathEnd | null = null) {
    this.name = name
    this.root = root
    this.fallback = fallback
  }

  /** The end `msg` belongs to (tree match, else default), or null. Reads from `msg.off`. */
  classify(msg: Msg): PathEnd | null {
    const r = this.root === null ? null : this.root.classify(msg, msg.off)
    if (r !== null) {
      this.counters.matched++
      return r
    }
    if (this.fallback !== null) {
      this.counters.defaulted++
      return this.fallback
    }
    this.counters.unmatched++
    return null
  }

  /** The tree as indented text (the inspectable "program", like Click's). */
  describe(): string {
    const out: string[] = [`classifier ${this.name}`]
    if (this.root !== null) this.root.describe('  ', out)
    out.push(`  otherwise ${this.fallback ? `-> ${this.fallback.name}` : 'drop'}`)
    return out.join('\n')
  }

  /** A snapshot of the counters. */
  stats(): ClassifierStats {
    return { ...this.counters }
  }
}
