/**
 * Core path overhead: ns per packet through an empty path and a 5-stage pass-through path
 * (enqueue -> run -> output queue -> flush, batches of 64), and the bare stage traversal.
 * @module
 */
import { framePool } from '../../core/msg.js'
import { Path, type EndTarget } from '../../core/path.js'
import { PassStage } from '../../core/stage.js'
import { timeOps, type BenchFigure } from '../lib/report.js'
import type { Suite } from '../lib/suite.js'

const BATCH = 64
const sink: EndTarget = { name: 'sink', send: () => {} }

/** The core path suite. */
export const corePathSuite: Suite = {
  id: 'core-path',
  title: 'Core path overhead (memory, no I/O)',
  async run(ctx) {
    const m = framePool.alloc()
    m.end = m.off + 64
    const figures: BenchFigure[] = []
    const sizes = [0, 1, 5]
    for (let i = 0; i < sizes.length; i++) {
      const n = sizes[i]!
      ctx.progress(i / sizes.length, `${n}-stage path`)
      const p = new Path(Array.from({ length: n }, () => new PassStage()))
      p.connect(1, sink)
      const end = p.ends[0]
      figures.push(
        await timeOps(`${n}-stage path: enqueue + run + flush`, () => {
          for (let k = 0; k < BATCH; k++) end.enqueue(m)
          p.run()
          p.flush()
        }, BATCH, ctx.quick),
      )
      figures.push(
        await timeOps(`${n}-stage path: stage traversal only`, () => {
          for (let k = 0; k < BATCH; k++) p.pass(-1, m, 0)
          p.ends[1].outCount = 0
        }, BATCH, ctx.quick),
      )
    }
    ctx.progress(1, 'done')
    return {
      tables: [
        {
          title: 'ns per packet',
          columns: ['path', 'ns/packet', 'M packets/s'],
          rows: figures.map(f => [f.name, f.nsPerOp, f.opsPerSec / 1e6]),
        },
      ],
      charts: [
        {
          name: 'ns-per-packet',
          spec: {
            title: 'Core path: ns per packet',
            data: { values: figures.map(f => ({ benchmark: f.name, ns: Number(f.nsPerOp.toFixed(2)) })) },
            mark: 'bar',
            encoding: { y: { field: 'benchmark', type: 'nominal', sort: null }, x: { field: 'ns', type: 'quantitative', title: 'ns per packet' } },
          },
        },
      ],
      data: figures,
    }
  },
}
