/**
 * Example: a stage written by a user and hot-swapped into a running path.
 *
 * The forwarder runs `examples/configs/l4-memory.jsonc`; a transfer crosses its IP router
 * path `[lan] -> eth -> router -> eth -> [wan]`. While bytes flow:
 *   1. a {@link SegmentCounter} is swapped in before the router (gate, replace, ungate);
 *   2. it is replaced by a {@link SegmentCounterV2}, which takes over the counts through
 *      `takeState` (Click's take_state) and also counts SYN and FIN flags;
 *   3. it is removed again.
 * Nothing is lost, duplicated or reordered: the transfer's digests match.
 * Run: `node dist/examples/custom-stage.js`.
 * @module
 */
import { readFileSync } from 'node:fs'
import { ManualClock } from '../core/clock.js'
import type { Msg } from '../core/msg.js'
import { Scheduler } from '../core/scheduler.js'
import { Dir, Stage } from '../core/stage.js'
import { RouterStage } from '../stages/router/stage.js'
import type { Interface } from '../paths/host.js'
import { parseConfig } from '../bin/config/schema.js'
import { startForwarder } from '../bin/config/runtime.js'
import { createLogger } from '../bin/log.js'
import { exampleConfig, peerHost, transfer } from './lib/net.js'

/**
 * COUNT: counts IPv4 datagrams and their bytes per direction and passes them on unchanged.
 * Consumes/produces: IPv4 datagrams (msg.off at the IP header). No allocation, no drops.
 */
export class SegmentCounter extends Stage {
  /** Datagrams per direction [forward, backward]. */
  readonly packets: [number, number] = [0, 0]
  /** IP bytes per direction. */
  readonly bytes: [number, number] = [0, 0]

  /** Creates the stage (`kind` shows in path dumps). */
  constructor(kind = 'COUNT') {
    super(kind, Dir.Forward)
  }

  /** Counts and passes on. */
  deliver(msg: Msg, dir: Dir): void {
    this.packets[dir]++
    this.bytes[dir] += msg.end - msg.off
    this.send(msg, dir)
  }
}

/** COUNT2: {@link SegmentCounter} plus SYN and FIN flags of TCP segments; takes over a COUNT's counts. */
export class SegmentCounterV2 extends SegmentCounter {
  /** TCP segments with SYN, with FIN. */
  syn = 0
  /** See syn. */
  fin = 0

  constructor() {
    super('COUNT2')
  }

  /** Counts, reads the TCP flags (IPv4 protocol 6), passes on. */
  override deliver(msg: Msg, dir: Dir): void {
    const b = msg.buf
    const ip = msg.off
    if (msg.end - ip >= 20 && b[ip + 9] === 6) {
      const tcp = ip + (b[ip]! & 0x0f) * 4
      if (tcp + 14 <= msg.end) {
        const flags = b[tcp + 13]!
        if (flags & 0x02) this.syn++
        if (flags & 0x01) this.fin++
      }
    }
    super.deliver(msg, dir)
  }

  /** Hot swap: carry the counts of the COUNT stage it replaces (other kinds are ignored). */
  override takeState(old: readonly Stage[], warnings: string[]): void {
    const prev = old.find((s): s is SegmentCounter => s instanceof SegmentCounter)
    if (prev === undefined) {
      warnings.push('COUNT2: no COUNT stage to take counts from; starting at zero')
      return
    }
    for (const d of [0, 1] as const) {
      this.packets[d] += prev.packets[d]
      this.bytes[d] += prev.bytes[d]
    }
  }
}

/** What the example saw. */
export interface CustomStageResult {
  /** The transfer arrived whole both ways. */
  intact: boolean
  /** Paths after each swap. */
  paths: string[]
  /** Final counts of COUNT2 (including those taken over from COUNT). */
  packets: [number, number]
  /** SYN and FIN segments COUNT2 saw. */
  syn: number
  /** See syn. */
  fin: number
  /** Datagrams COUNT saw before it was replaced. */
  countedByV1: number
}

/** Runs the example in virtual time with `bytes` each way. */
export async function main(bytes = 2_000_000, print = true): Promise<CustomStageResult> {
  const file = exampleConfig('l4-memory.jsonc')
  const sched = new Scheduler({ clock: new ManualClock() })
  const fw = await startForwarder(parseConfig(readFileSync(file, 'utf8'), file), { scheduler: sched, log: createLogger(print ? 'info' : 'silent') })
  const client = peerHost(fw, 'lan', '10.0.0.2/24', '10.0.0.1')
  const server = peerHost(fw, 'wan', '10.0.1.2/24', '10.0.1.1')
  const path = fw.routers[0]!
  const x = transfer(client.tcp, server.tcp, '10.0.1.2', 7000, 7000, bytes)
  const paths: string[] = []
  const v1 = new SegmentCounter()
  const v2 = new SegmentCounterV2()
  const swap = (first: Stage, last: Stage, stages: Stage[]): void => {
    // Scout/Click hot swap: hold input at the ends, replace between messages, release.
    path.gate()
    path.betweenMessages(() => {
      for (const w of path.replace(first, last, stages)) console.warn(w)
      path.ungate()
      paths.push(`${path.describe()}  (at ${sched.now()} ms, ${x.up() + x.down()} bytes)`)
    })
  }
  let step = 0
  const router = (): RouterStage<Interface> => path.stages.find((s): s is RouterStage<Interface> => s instanceof RouterStage)!
  let countedByV1 = 0
  while (!x.done() && sched.now() < 300_000) {
    sched.runFor(1)
    const frac = (x.up() + x.down()) / (2 * bytes)
    if (step === 0 && frac > 0.2) {
      // 1. in: COUNT before the router; a new ROUTER stage (same table and sides) takes its place.
      const r = router()
      swap(r, r, [v1, new RouterStage<Interface>({ routes: fw.host.routes, sides: [fw.host.interface('lan')!, fw.host.interface('wan')!], clock: sched.clock })])
      step = 1
    } else if (step === 1 && frac > 0.5) {
      countedByV1 = v1.packets[0] + v1.packets[1]
      swap(v1, v1, [v2]) // 2. upgrade: COUNT2 takes COUNT's counts
      step = 2
    } else if (step === 2 && frac > 0.8) {
      swap(v2, v2, []) // 3. out
      step = 3
    }
  }
  const r: CustomStageResult = { intact: x.intact(), paths, packets: [...v2.packets], syn: v2.syn, fin: v2.fin, countedByV1 }
  if (print) {
    for (const p of paths) console.log(p)
    console.log(`COUNT saw ${countedByV1} datagrams; COUNT2 ended with ${r.packets[0]} forward + ${r.packets[1]} backward (taken over + its own), FIN ${r.fin}`)
    console.log(`transfer ${r.intact ? 'intact both ways' : 'BROKEN'} across three hot swaps`)
  }
  await fw.close()
  return r
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const r = await main()
  process.exitCode = r.intact ? 0 : 1
}
