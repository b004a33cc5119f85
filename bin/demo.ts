/**
 * `pathsplice demo`: the main job on an embedded default, no root needed.
 *
 * An in-process network in virtual time: a sender device, a forwarder whose path is built
 * from a path spec, and a receiver device, joined by memory wires. Real bytes (seeded
 * random payloads) cross the forwarder while its middle stages are hot-swapped; the
 * receiver's SHA-256 digest must equal the sender's, and nothing may be lost, duplicated
 * or reordered. Prints a table (or one JSON object with `--json`).
 * @module
 */
import { createHash } from 'node:crypto'
import { buildChain } from '../core/build.js'
import { Classifier } from '../core/classifier.js'
import { ManualClock } from '../core/clock.js'
import { bindDevice } from '../core/ingress.js'
import { ModuleGraph, type Module } from '../core/module.js'
import { framePool, type Msg } from '../core/msg.js'
import { Random } from '../core/random.js'
import { Scheduler } from '../core/scheduler.js'
import { parseSpec } from '../core/spec.js'
import { PassStage, type Stage } from '../core/stage.js'
import { MemoryWire } from '../drivers/memory/wire.js'

/** Options of {@link runDemo}. */
export interface DemoOptions {
  /** Print one JSON summary instead of the table. */
  json: boolean
  /** Messages per configuration. */
  packets: number
  /** Hot swaps while traffic flows. */
  swaps: number
  /** Seed (default: random, printed). */
  seed?: number
}

/** One row of the demo's result. */
export interface DemoRow {
  /** Configuration name. */
  config: string
  /** The path spec it ran. */
  spec: string
  /** Bytes sent. */
  bytesSent: number
  /** Bytes received. */
  bytesReceived: number
  /** Whether the receiver's digest equals the sender's. */
  digestsMatch: boolean
  /** Hot swaps performed while traffic flowed. */
  swaps: number
  /** Messages per second of wall time. */
  msgsPerSec: number
}

const PASS: Module = { name: 'PASS', layer: 3, summary: 'passes messages on unchanged', createStage: ctx => new PassStage('PASS', ctx.up) }

const CONFIGS: { config: string; spec: string; swap: boolean }[] = [
  { config: '1 stage', spec: 'mem0 -> PASS -> mem1', swap: false },
  { config: '5 stages', spec: 'mem0 -> PASS -> PASS -> PASS -> PASS -> PASS -> mem1', swap: false },
  { config: '5 stages + hot swap', spec: 'mem0 -> PASS -> PASS -> PASS -> PASS -> PASS -> mem1', swap: true },
]

function progress(enabled: boolean, label: string, done: number, total: number): void {
  if (!enabled) return
  const width = 30
  const filled = Math.round((done / total) * width)
  process.stderr.write(`\r${label.padEnd(22)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.round((done / total) * 100)}%`)
  if (done >= total) process.stderr.write('\n')
}

function runOne(cfg: (typeof CONFIGS)[number], opts: DemoOptions, seed: number, showProgress: boolean): DemoRow {
  const rng = new Random(seed)
  const sched = new Scheduler({ clock: new ManualClock() })
  const inbound = new MemoryWire(sched, { a: { name: 'sender' }, b: { name: 'mem0' }, seed })
  const outbound = new MemoryWire(sched, { a: { name: 'mem1' }, b: { name: 'receiver' }, seed: seed + 1 })
  const graph = new ModuleGraph().add(PASS)
  const devices = new Map([['mem0', inbound.b], ['mem1', outbound.a]])
  const { path } = buildChain(parseSpec(cfg.spec, 'demo').paths[0]!, graph, devices)
  sched.adopt(path)
  bindDevice(inbound.b, new Classifier('mem0', null, path.ends[0]), sched.clock, 0)

  const sent = createHash('sha256')
  const received = createHash('sha256')
  let bytesSent = 0
  let bytesReceived = 0
  let got = 0
  outbound.b.onReceive((batch: Msg[], n: number) => {
    for (let i = 0; i < n; i++) {
      const m = batch[i]!
      received.update(m.buf.subarray(m.off, m.end))
      bytesReceived += m.end - m.off
      got++
      m.free()
    }
  })
  const payload = new Uint8Array(1400)
  let swaps = 0
  const start = performance.now()
  const batch: Msg[] = []
  for (let sentCount = 0; sentCount < opts.packets; ) {
    const n = Math.min(64, opts.packets - sentCount)
    for (let i = 0; i < n; i++) {
      const m = framePool.alloc()
      const len = rng.int(60, payload.length)
      rng.bytes(payload.subarray(0, len))
      m.buf.set(payload.subarray(0, len), m.off)
      m.end = m.off + len
      sent.update(payload.subarray(0, len))
      bytesSent += len
      batch[i] = m
    }
    inbound.a.send(batch, n)
    sentCount += n
    if (cfg.swap && swaps < opts.swaps && rng.chance(0.5)) {
      // Scout-style hot swap between messages: gate, replace the middle stages, ungate.
      path.gate()
      const stages = path.stages
      const fresh: Stage[] = [new PassStage('PASS'), new PassStage('PASS'), new PassStage('PASS')]
      path.replace(stages[1]!, stages[3]!, fresh)
      sched.runFor(0)
      path.ungate()
      swaps++
    }
    sched.runFor(0.01)
    if ((sentCount & 0x3fff) === 0) progress(showProgress, cfg.config, sentCount, opts.packets)
  }
  sched.runUntil(() => got >= opts.packets, sched.now() + 1000)
  progress(showProgress, cfg.config, opts.packets, opts.packets)
  const secs = (performance.now() - start) / 1000
  return {
    config: cfg.config,
    spec: cfg.spec,
    bytesSent,
    bytesReceived,
    digestsMatch: sent.digest('hex') === received.digest('hex') && got === opts.packets,
    swaps,
    msgsPerSec: Math.round(opts.packets / secs),
  }
}

/** Runs the demo; returns true when every configuration delivered every byte intact. */
export async function runDemo(opts: DemoOptions): Promise<boolean> {
  const seed = opts.seed ?? ((Math.random() * 2 ** 32) >>> 0)
  const showProgress = !opts.json && process.stderr.isTTY === true
  if (!opts.json) console.log(`pathsplice demo: in-process network on memory wires, virtual time, seed ${seed}`)
  const rows = CONFIGS.map((c, i) => runOne(c, opts, seed + i, showProgress))
  const ok = rows.every(r => r.digestsMatch)
  if (opts.json) {
    console.log(JSON.stringify({ seed, ok, configurations: rows }))
    return ok
  }
  console.log('')
  console.log('| configuration | path spec | bytes | digests | hot swaps | msgs/s |')
  console.log('|---|---|---:|---|---:|---:|')
  for (const r of rows) {
    console.log(`| ${r.config} | \`${r.spec}\` | ${r.bytesReceived}/${r.bytesSent} | ${r.digestsMatch ? 'match' : 'MISMATCH'} | ${r.swaps} | ${r.msgsPerSec.toLocaleString('en-US')} |`)
  }
  console.log('')
  console.log(ok ? 'all digests match: nothing lost, duplicated or reordered' : 'FAILED: a digest did not match')
  return ok
}
