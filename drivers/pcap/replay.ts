/**
 * Replay: feed the frames of a `.pcap` into a path, either as if a device received them (a
 * {@link ReceiveHandler}) or out of a device (`device.send`, e.g. injecting into a TAP).
 *
 * Pacing: `'fast'` hands frames over in batches as fast as the target takes them, yielding
 * to the event loop between batches; `'recorded'` keeps the gaps between the recorded
 * timestamps (divided by `speed`), batching the frames that fall due together.
 * @module
 */
import { performance } from 'node:perf_hooks'
import type { Device, ReceiveHandler } from '../../core/device.js'
import { allocMsg } from '../../core/msg.js'
import type { Msg } from '../../core/msg.js'
import type { Clock } from '../../core/clock.js'
import { PathspliceError } from '../../core/errors.js'
import { LINKTYPE_ETHERNET, readPcap } from './pcap-file.js'
import type { PcapCapture } from './pcap-file.js'

/** Options of {@link replayPcap}. */
export interface ReplayOptions {
  /** `'fast'` (default) or `'recorded'` (keep the recorded gaps). */
  pace?: 'fast' | 'recorded'
  /** With `'recorded'`: playback speed factor (2 = twice as fast). Default 1. */
  speed?: number
  /** Most frames per handler or send call (default 64). */
  batchSize?: number
  /** `msg.ingress` of replayed frames when delivered to a handler (default -1). */
  ingress?: number
  /** Stamps `msg.rxTime` when delivered to a handler (default `performance.now`). */
  clock?: Clock
  /** Stops the replay early (the promise resolves with what was replayed). */
  signal?: AbortSignal
  /** Frames to skip at the start / to replay at most. */
  skip?: number
  /** Most frames to replay (default all). */
  limit?: number
}

/** What a replay did. */
export interface ReplayResult {
  /** Frames handed to the target. */
  frames: number
  /** Bytes handed to the target. */
  bytes: number
  /** Wall-clock duration in milliseconds. */
  durationMs: number
  /** True if stopped by the abort signal. */
  aborted: boolean
}

function isDevice(t: Device | ReceiveHandler): t is Device {
  return typeof t === 'object' && t !== null && typeof (t as Device).send === 'function'
}

const yieldTurn = (): Promise<void> => new Promise(res => setImmediate(res))
const sleep = (ms: number): Promise<void> => new Promise(res => setTimeout(res, ms))

/**
 * Replays the frames of `source` (a path or a parsed capture) into `target`: a receive
 * handler gets them as received frames (ownership passes to it), a device sends them.
 */
export async function replayPcap(source: string | PcapCapture, target: Device | ReceiveHandler, opts: ReplayOptions = {}): Promise<ReplayResult> {
  const cap = typeof source === 'string' ? readPcap(source) : source
  if (cap.linktype !== LINKTYPE_ETHERNET) {
    throw new PathspliceError(`cannot replay link type ${cap.linktype}: pathsplice devices carry Ethernet frames (link type 1)`, 'PS_ERR_PCAP_FORMAT')
  }
  const pace = opts.pace ?? 'fast'
  const speed = opts.speed ?? 1
  if (!(speed > 0)) throw new RangeError(`replay speed ${speed} must be > 0`)
  const batchSize = Math.max(1, opts.batchSize ?? 64)
  const clock = opts.clock ?? performance
  const ingress = opts.ingress ?? -1
  const start = opts.skip ?? 0
  const end = Math.min(cap.records.length, start + (opts.limit ?? Infinity))
  const deliver: (batch: Msg[], n: number) => void = isDevice(target) ? (b, n) => target.send(b, n) : target
  const toHandler = !isDevice(target)

  const batch: Msg[] = new Array<Msg>(batchSize)
  const t0 = performance.now()
  const rec0 = start < end ? cap.records[start]!.timeMs : 0
  let frames = 0
  let bytes = 0
  let i = start
  while (i < end) {
    if (opts.signal?.aborted) return { frames, bytes, durationMs: performance.now() - t0, aborted: true }
    if (pace === 'recorded') {
      const dueAt = t0 + (cap.records[i]!.timeMs - rec0) / speed
      const wait = dueAt - performance.now()
      if (wait > 1) await sleep(wait)
    }
    // Fill one batch: every frame already due (recorded pace) or the next batchSize (fast).
    const now = performance.now()
    let n = 0
    while (i < end && n < batchSize) {
      const r = cap.records[i]!
      if (pace === 'recorded' && n > 0 && t0 + (r.timeMs - rec0) / speed > now) break
      const m = allocMsg(r.data.length)
      m.buf.set(r.data, m.off)
      m.end = m.off + r.data.length
      if (toHandler) {
        m.ingress = ingress
        m.rxTime = clock.now()
      }
      batch[n++] = m
      bytes += r.data.length
      i++
    }
    frames += n
    deliver(batch, n)
    if (pace === 'fast' && i < end) await yieldTurn()
  }
  return { frames, bytes, durationMs: performance.now() - t0, aborted: false }
}
