/**
 * Time for pathsplice: milliseconds as a float, from a {@link Clock} passed in, so protocol
 * code never reads the wall clock itself and tests run in virtual time.
 * @module
 */
import { performance } from 'node:perf_hooks'

/** A source of the current time in milliseconds (fractional). */
export interface Clock {
  /** Current time in milliseconds. */
  now(): number
}

/** The real monotonic clock (`performance.now()`). */
export const realClock: Clock = { now: () => performance.now() }

/** A clock that moves only when told to: tests and simulations advance it explicitly. */
export class ManualClock implements Clock {
  private t: number
  /** Starts at `start` ms (default 0). */
  constructor(start = 0) {
    this.t = start
  }
  /** Current virtual time. */
  now(): number {
    return this.t
  }
  /** Sets the virtual time; it never goes backwards. */
  set(t: number): void {
    if (t < this.t) throw new RangeError(`ManualClock cannot go back from ${this.t} to ${t}`)
    this.t = t
  }
}
