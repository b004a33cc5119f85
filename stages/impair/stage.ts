/**
 * IMPAIR: loss, duplication, reordering, delay, corruption and rate limits inside a path,
 * because this kernel has no netem. Put it anywhere, e.g. between ETH and the device side
 * of a forwarder under test: `tap0 -> IMPAIR(loss=0.02, reorder=0.01) -> ETH -> ...`.
 * Consumes: any message, either direction.
 * Produces: the survivors, later (a later scheduler turn), each as a new entry into the path.
 * Drops:    none counted here: losses are the impairer's counters (`stats().extra`).
 * State:    one seeded {@link Impairer} per direction.
 * @module
 */
import { ConfigError, PathSpecError } from '../../core/errors.js'
import { Impairer, type Impairments } from '../../core/impair.js'
import type { Module } from '../../core/module.js'
import type { Msg } from '../../core/msg.js'
import type { Scheduler } from '../../core/scheduler.js'
import { Dir, Stage, type Dir as DirT } from '../../core/stage.js'

/** Options of an {@link ImpairStage}. */
export interface ImpairOptions {
  /** Impairments of messages travelling forward. */
  forward?: Impairments
  /** Impairments of messages travelling backward (default: the same as forward). */
  backward?: Impairments
  /** Seed (default 1). */
  seed?: number
}

/** A stage that impairs what crosses it. */
export class ImpairStage extends Stage {
  private readonly lanes: [Impairer, Impairer]

  /** Creates the stage; bad values throw {@link ConfigError}. */
  constructor(scheduler: Scheduler, opts: ImpairOptions = {}) {
    super('IMPAIR')
    const seed = opts.seed ?? 1
    const fwd = opts.forward ?? {}
    this.lanes = [
      new Impairer(scheduler, (batch, n) => this.release(batch, n, Dir.Forward), fwd, seed),
      new Impairer(scheduler, (batch, n) => this.release(batch, n, Dir.Backward), opts.backward ?? fwd, (seed ^ 0x9e3779b9) >>> 0),
    ]
  }

  /** Hands the message to the direction's impairer. */
  deliver(msg: Msg, dir: DirT): void {
    this.lanes[dir].offer(msg)
  }

  /** Counters of both directions. */
  override extraStats(): Record<string, number> {
    const out: Record<string, number> = {}
    for (const [name, lane] of [['fwd', this.lanes[0]], ['back', this.lanes[1]]] as const) {
      for (const [k, v] of Object.entries(lane.stats)) out[`${name}.${k}`] = v
    }
    return out
  }

  /** Frees what is in flight when the stage leaves its path. */
  override detached(): void {
    this.lanes[0].drain()
    this.lanes[1].drain()
  }

  private release(batch: Msg[], n: number, dir: DirT): void {
    for (let i = 0; i < n; i++) {
      const m = batch[i]!
      // A released message re-enters the path here; it was not created by this stage, so
      // it goes through the path directly rather than Stage.originate (which counts it).
      const p = this.path
      if (p === null) this.drop(m, 'unlinked')
      else p.originate(this, m, dir)
    }
  }
}

const NUMERIC = ['loss', 'duplicate', 'reorder', 'reorderDelayMs', 'corrupt', 'delayMs', 'jitterMs', 'rateBps', 'queueLimit'] as const

/** The IMPAIR module for path specs: `IMPAIR(loss=0.01, delayMs=5, seed=7)`. */
export function impairModule(scheduler: Scheduler): Module {
  return {
    name: 'IMPAIR',
    layer: 1,
    summary: 'seeded loss, duplication, reordering, delay, corruption, rate limit',
    createStage(ctx) {
      const imp: Impairments = {}
      let seed = 1
      for (const [k, v] of Object.entries(ctx.args.named)) {
        const n = Number(v)
        if (!Number.isFinite(n)) throw new PathSpecError(`${k}=${v} is not a number`)
        if (k === 'seed') seed = n
        else if ((NUMERIC as readonly string[]).includes(k)) imp[k as (typeof NUMERIC)[number]] = n
        else throw new PathSpecError(`unknown argument '${k}' (accepted: ${[...NUMERIC, 'seed'].join(', ')})`)
      }
      if (ctx.args.positional.length > 0) throw new PathSpecError(`takes only named arguments, e.g. IMPAIR(loss=0.01)`)
      try {
        return new ImpairStage(scheduler, { forward: imp, seed })
      } catch (err) {
        if (err instanceof ConfigError) throw new PathSpecError(err.message)
        throw err
      }
    },
  }
}
