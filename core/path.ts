/**
 * Path: a bidirectional linked list of stages with an input and an output queue at each
 * end (Scout's path). It is also the unit of scheduling.
 *
 * ```
 *            end 0                                                   end 1
 *   in[0] ──▶ ┌──────┐ fwd ┌──────┐ fwd ┌──────┐ fwd ┌──────┐ ──▶ out[1] ──▶ target[1]
 *             │ eth#1│────▶│ ip#1 │────▶│ ip#2 │────▶│ eth#2│
 * target[0] ◀─┤      │◀────│      │◀────│      │◀────│      │◀── in[1]
 *   ◀── out[0]└──────┘ back└──────┘ back└──────┘ back└──────┘
 * ```
 * A message entering at end 0 travels forward (stage index increasing) and leaves at end
 * 1; one entering at end 1 travels backward. Stages may also originate messages in either
 * direction (a TCP stage sends ACKs down towards its device).
 *
 * Hot swap (Scout's splice, Click's hotswap): `gate()` lets input accumulate in the input
 * queues; `replace(first, last, stages)` swaps a contiguous run of stages between messages,
 * never inside one, calling `takeState` on each new stage; `ungate()` resumes.
 * @module
 */
import { SpliceStateError } from './errors.js'
import type { Msg } from './msg.js'
import { Ring } from './ring.js'
import { Dir, type Stage } from './stage.js'

/** Where messages leaving a path end go: a device, or another path's end (its `send`). */
export interface EndTarget {
  /** Takes ownership of `batch[0..count)`; the array stays the caller's. */
  send(batch: Msg[], count: number): void
  /** Name shown in path dumps. */
  readonly name: string
}

/** What a path needs from its scheduler. */
export interface PathRunner {
  /** The path has input to process. */
  wake(path: Path): void
  /** The end has output to flush to its target at the end of this turn. */
  flushLater(end: PathEnd): void
}

/** Largest output batch an end holds before flushing on its own. */
export const MAX_OUT_BATCH = 64

/**
 * One end of a path: its input queue, its output queue, and the target the output goes to.
 * A PathEnd is itself an {@link EndTarget}, so one path's end can feed another's input
 * (the 2-path forwarder hands messages from path to path this way).
 */
export class PathEnd implements EndTarget {
  /** The path this end belongs to. */
  readonly path: Path
  /** 0 or 1. Input at end 0 travels forward, at end 1 backward. */
  readonly index: 0 | 1
  /** Messages waiting to enter the path. */
  readonly input = new Ring<Msg>(64)
  /** Messages that left the path at this end and wait to be flushed to {@link PathEnd.target}. */
  readonly output: Msg[] = []
  /** Number of valid entries in {@link PathEnd.output}. */
  outCount = 0
  /** Where output goes; messages leaving an end with no target are dropped and counted. */
  target: EndTarget | null = null
  /** @internal Set while registered with the runner for a flush. */
  flushQueued = false
  /** Messages that entered at this end. */
  inPkts = 0
  /** Messages that left at this end. */
  outPkts = 0
  /** Messages dropped at this end (no target). */
  dropped = 0

  /** @internal */
  constructor(path: Path, index: 0 | 1) {
    this.path = path
    this.index = index
  }

  /** Name for dumps: `pathname.end0`. */
  get name(): string {
    return `${this.path.name}.end${this.index}`
  }

  /** Queues one message at this end's input and wakes the path. Takes ownership. */
  enqueue(msg: Msg): void {
    this.inPkts++
    this.input.push(msg)
    this.path.wake()
  }

  /** EndTarget: queues a whole batch at this end's input. */
  send(batch: Msg[], count: number): void {
    for (let i = 0; i < count; i++) {
      this.inPkts++
      this.input.push(batch[i]!)
    }
    if (count > 0) this.path.wake()
  }

  /** Hands the output queue to the target in one batch. */
  flush(): void {
    this.flushQueued = false
    const n = this.outCount
    if (n === 0) return
    this.outCount = 0
    const target = this.target
    if (target === null) {
      for (let i = 0; i < n; i++) this.output[i]!.free()
      this.dropped += n
      return
    }
    target.send(this.output, n)
    // Clear references so freed buffers are not reachable from here.
    for (let i = 0; i < n; i++) this.output[i] = undefined as unknown as Msg
  }
}

/** Counters of one path end, in a {@link PathInfo}. */
export interface PathEndInfo {
  /** Name of the end's target, or null. */
  target: string | null
  /** Messages that entered at this end. */
  inPkts: number
  /** Messages that left at this end. */
  outPkts: number
  /** Messages dropped at this end for want of a target. */
  dropped: number
  /** Messages waiting in the input queue. */
  queued: number
}

/** A read-only snapshot of a path. */
export interface PathInfo {
  /** Path id. */
  id: number
  /** Path name. */
  name: string
  /** True while input is held. */
  gated: boolean
  /** Stage names in order. */
  stages: string[]
  /** [end0, end1] input/output counters. */
  ends: PathEndInfo[]
}

let nextPathId = 1

/** A path: stages in a row, two ends, a gate. */
export class Path {
  /** Unique id. */
  readonly id: number
  /** Name for dumps and stats (defaults to `path<id>`). */
  name: string
  /** Attributes the path was created with (Scout's participant attributes); modules read them. */
  readonly attrs: Record<string, unknown>
  /** The two ends. */
  readonly ends: readonly [PathEnd, PathEnd]
  /** The runner that schedules this path (null: run by hand with {@link Path.run}). */
  runner: PathRunner | null = null
  /** @internal Set while registered with the runner. */
  queued = false
  private list: Stage[] = []
  private gatedFlag = false
  private depth = 0
  private deferred: (() => void)[] = []
  private kindCounts = new Map<string, number>()
  private closed = false
  /** Exceptions that escaped a stage while running a message (a bug in that stage; the first is kept in {@link Path.lastError}). */
  exceptions = 0
  /** The first exception that escaped a stage, for diagnosis. */
  lastError: unknown = null

  /** Creates a path over `stages` (linked in order, first next to end 0). */
  constructor(stages: Stage[] = [], opts: { name?: string; attrs?: Record<string, unknown> } = {}) {
    this.id = nextPathId++
    this.name = opts.name ?? `path${this.id}`
    this.attrs = opts.attrs ?? {}
    this.ends = [new PathEnd(this, 0), new PathEnd(this, 1)]
    for (const s of stages) this.link(s)
    this.renumber()
    for (const s of stages) s.attached?.(this)
  }

  /** The stages, end 0 first. Do not mutate; use {@link Path.replace}. */
  get stages(): readonly Stage[] {
    return this.list
  }

  /** True while input is held at the ends. */
  get gated(): boolean {
    return this.gatedFlag
  }

  /** True while a message is being processed on this path. */
  get busy(): boolean {
    return this.depth > 0
  }

  /** True once {@link Path.close} ran. */
  get isClosed(): boolean {
    return this.closed
  }

  /** Finds a stage by name (`tcp#1`) or returns undefined. */
  stage(name: string): Stage | undefined {
    return this.list.find(s => s.name === name)
  }

  /** Sets where messages leaving end `end` go. */
  connect(end: 0 | 1, target: EndTarget | null): this {
    this.ends[end].target = target
    return this
  }

  /**
   * Moves `msg` on from stage `i` in `dir`: to the next stage, or out of the path's end.
   * Stages call this through {@link Stage.send}.
   */
  pass(i: number, msg: Msg, dir: Dir): void {
    const j = dir === 0 ? i + 1 : i - 1
    const s = this.list[j]
    if (s === undefined) {
      this.exit(this.ends[dir === 0 ? 1 : 0], msg)
      return
    }
    if (dir === 0) {
      s.pktsF++
      s.bytesF += msg.end - msg.off
    } else {
      s.pktsB++
      s.bytesB += msg.end - msg.off
    }
    s.deliver(msg, dir)
  }

  /** Runs a message a stage created (timer, application write) as its own entry into the path. */
  originate(from: Stage, msg: Msg, dir: Dir): void {
    this.depth++
    try {
      this.pass(from.index, msg, dir)
    } finally {
      if (--this.depth === 0 && this.deferred.length > 0) this.runDeferred()
    }
  }

  /** @internal Called by {@link PathEnd.enqueue}. */
  wake(): void {
    if (this.runner !== null && !this.queued && !this.gatedFlag) this.runner.wake(this)
  }

  /** True when an input queue holds messages (and the path is not gated). */
  get runnable(): boolean {
    return !this.gatedFlag && (this.ends[0].input.size > 0 || this.ends[1].input.size > 0)
  }

  /**
   * Processes up to `budget` queued input messages, each to completion, alternating
   * between the ends. Returns how many ran. A gated path runs nothing.
   */
  run(budget = Infinity): number {
    let done = 0
    const in0 = this.ends[0].input
    const in1 = this.ends[1].input
    while (done < budget && !this.gatedFlag) {
      let progressed = false
      let m = in0.shift()
      if (m !== undefined) {
        this.runOne(-1, m, Dir.Forward)
        done++
        progressed = true
      }
      if (done < budget && !this.gatedFlag) {
        m = in1.shift()
        if (m !== undefined) {
          // Read the length per message: a swap between messages may have changed it.
          this.runOne(this.list.length, m, Dir.Backward)
          done++
          progressed = true
        }
      }
      if (!progressed) break
    }
    return done
  }

  /** Flushes both ends' output queues to their targets. */
  flush(): void {
    this.ends[0].flush()
    this.ends[1].flush()
  }

  /** Holds input at both ends until {@link Path.ungate} (Scout splice step 1). */
  gate(): void {
    this.gatedFlag = true
  }

  /** Releases held input (Scout splice step 5). */
  ungate(): void {
    this.gatedFlag = false
    if (this.runnable) this.wake()
  }

  /**
   * Runs `fn` between messages: now if no message is being processed on this path,
   * otherwise right after the current one completes. Splices requested from inside a
   * stage (a proxy deciding to splice while it reads) go through here.
   */
  betweenMessages(fn: () => void): void {
    if (this.depth === 0) fn()
    else this.deferred.push(fn)
  }

  /**
   * Replaces the contiguous run of stages `first..last` (inclusive, in path order) with
   * `stages`, between messages. Each new stage's `takeState(oldRun, warnings)` runs after
   * it is linked; old stages get `detached`. Returns the warnings the new stages reported.
   * Throws {@link SpliceStateError} if called while a message is in flight on this path
   * (use {@link Path.betweenMessages}) or if `first..last` is not a run of this path.
   */
  replace(first: Stage, last: Stage, stages: readonly Stage[]): string[] {
    if (this.depth > 0) {
      throw new SpliceStateError(`${this.name}: replace() called while a message is in flight; wrap it in path.betweenMessages()`)
    }
    const list = this.list
    // A stage's index is its position (renumber keeps it so): no search along the path.
    const i = first.path === this ? first.index : -1
    const j = last.path === this ? last.index : -1
    if (i < 0 || j < 0 || j < i || list[i] !== first || list[j] !== last) {
      throw new SpliceStateError(`${this.name}: replace(${first.name}, ${last.name}) is not a run of stages of this path (${list.map(s => s.name).join(' -> ')})`)
    }
    for (let k = 0; k < stages.length; k++) {
      const s = stages[k]!
      if (s.path !== null) throw new SpliceStateError(`${this.name}: stage ${s.name} is already linked into ${s.path.name}`)
    }
    // Index loops, no iterators: a splice runs this on a cold path and should allocate little.
    const n = j - i + 1
    const old = list.slice(i, j + 1)
    for (let k = 0; k < n; k++) {
      const s = old[k]!
      s.path = null
      s.index = -1
    }
    if (stages.length === 1) list.splice(i, n, stages[0]!)
    else {
      list.splice(i, n)
      for (let k = 0; k < stages.length; k++) list.splice(i + k, 0, stages[k]!)
    }
    for (let k = 0; k < stages.length; k++) {
      const s = stages[k]!
      this.nameStage(s)
      s.path = this
    }
    this.renumber()
    for (let k = 0; k < n; k++) old[k]!.detached?.(this)
    const warnings: string[] = []
    for (let k = 0; k < stages.length; k++) {
      const s = stages[k]!
      s.attached?.(this)
      s.takeState?.(old, warnings)
    }
    return warnings
  }

  /**
   * Appends a stage at end 1. Unlike {@link Path.replace} this is allowed while a message
   * is in flight: no existing stage moves, so a message on its way up simply finds the new
   * stage (a proxy attaching itself when a connection is accepted relies on this).
   */
  append(stage: Stage): void {
    this.link(stage)
    this.renumber()
    stage.attached?.(this)
  }

  /** Unlinks every stage and frees queued messages; the path can no longer run. */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.gatedFlag = true
    for (const end of this.ends) {
      end.flush()
      end.input.clear(m => m.free())
    }
    const old = this.list
    this.list = []
    for (const s of old) {
      s.path = null
      s.index = -1
      s.detached?.(this)
    }
  }

  /** A read-only snapshot. */
  info(): PathInfo {
    return {
      id: this.id,
      name: this.name,
      gated: this.gatedFlag,
      stages: this.list.map(s => s.name),
      ends: this.ends.map(e => ({ target: e.target?.name ?? null, inPkts: e.inPkts, outPkts: e.outPkts, dropped: e.dropped, queued: e.input.size })),
    }
  }

  /** One line: `name: [end0 target] -> eth#1 -> ip#1 -> [end1 target]`. */
  describe(): string {
    const t0 = this.ends[0].target?.name ?? '-'
    const t1 = this.ends[1].target?.name ?? '-'
    const body = this.list.map(s => s.describe()).join(' -> ')
    return `${this.name}${this.gatedFlag ? ' (gated)' : ''}: [${t0}] -> ${body}${body ? ' -> ' : ''}[${t1}]`
  }

  private runOne(from: number, m: Msg, dir: Dir): void {
    this.depth++
    try {
      this.pass(from, m, dir)
    } catch (err) {
      // A stage must drop, not throw; if one does anyway, count it here so the error
      // never unwinds through the scheduler into the event loop.
      this.exceptions++
      if (this.exceptions === 1) this.lastError = err
    } finally {
      if (--this.depth === 0 && this.deferred.length > 0) this.runDeferred()
    }
  }

  private runDeferred(): void {
    const fns = this.deferred
    this.deferred = []
    for (const fn of fns) fn()
  }

  private exit(end: PathEnd, msg: Msg): void {
    end.outPkts++
    end.output[end.outCount++] = msg
    if (end.outCount >= MAX_OUT_BATCH) end.flush()
    else if (!end.flushQueued) {
      if (this.runner !== null) {
        end.flushQueued = true
        this.runner.flushLater(end)
      }
    }
  }

  private link(stage: Stage): void {
    if (stage.path !== null) throw new SpliceStateError(`stage ${stage.name} is already linked into ${stage.path.name}`)
    this.nameStage(stage)
    stage.path = this
    this.list.push(stage)
  }

  private nameStage(stage: Stage): void {
    const kind = stage.kind.toLowerCase()
    const n = (this.kindCounts.get(kind) ?? 0) + 1
    this.kindCounts.set(kind, n)
    stage.name = `${kind}#${n}`
  }

  private renumber(): void {
    for (let k = 0; k < this.list.length; k++) this.list[k]!.index = k
  }
}
