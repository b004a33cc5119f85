/**
 * Core path overhead: ns per packet through an empty path and through a 5-stage
 * pass-through path, queue in -> run -> out queue -> flush, batches of 64.
 * Run: `npm run build:ts && node dist/benchmarks/core-path.bench.js`.
 * @module
 */
import { framePool, type Msg } from '../core/msg.js'
import { Path, type EndTarget } from '../core/path.js'
import { PassStage } from '../core/stage.js'
import { table, timeOps, writeResults } from './lib/report.js'

const BATCH = 64

/** A sink that keeps nothing: the benchmark reuses one Msg. */
const sink: EndTarget = { name: 'sink', send: () => {} }

function pathWith(n: number): Path {
  const p = new Path(Array.from({ length: n }, () => new PassStage()))
  p.connect(1, sink)
  return p
}

async function main(): Promise<void> {
  const m: Msg = framePool.alloc()
  m.end = m.off + 64
  const figures = []
  for (const n of [0, 5]) {
    const p = pathWith(n)
    const end = p.ends[0]
    figures.push(
      await timeOps(`${n}-stage path, enqueue+run+flush`, () => {
        for (let i = 0; i < BATCH; i++) end.enqueue(m)
        p.run()
        p.flush()
      }, BATCH),
    )
    figures.push(
      await timeOps(`${n}-stage path, stage traversal only`, () => {
        for (let i = 0; i < BATCH; i++) p.pass(-1, m, 0)
        p.ends[1].outCount = 0
      }, BATCH),
    )
  }
  console.log(table(figures))
  console.log(`written: ${writeResults('core-path', figures)}`)
}

await main()
