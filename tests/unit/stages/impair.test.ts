import t from 'tap'
import { ManualClock } from '../../../core/clock.js'
import { buildChain } from '../../../core/build.js'
import { ModuleGraph } from '../../../core/module.js'
import { framePool, type Msg } from '../../../core/msg.js'
import { Path, type EndTarget } from '../../../core/path.js'
import { Scheduler } from '../../../core/scheduler.js'
import { parseSpec } from '../../../core/spec.js'
import { PathSpecError } from '../../../core/errors.js'
import { ImpairStage, impairModule } from '../../../stages/impair/index.js'

function collector(): EndTarget & { got: number[] } {
  const got: number[] = []
  return { name: 'sink', got, send: (b: Msg[], n: number) => { for (let i = 0; i < n; i++) { got.push(b[i]!.buf[b[i]!.off]!); b[i]!.free() } } }
}

t.test('an IMPAIR stage delays and drops inside a path, per direction', async t => {
  const s = new Scheduler({ clock: new ManualClock() })
  const st = new ImpairStage(s, { forward: { delayMs: 5, loss: 0.5 }, backward: { delayMs: 1 }, seed: 3 })
  const p = s.adopt(new Path([st]))
  const fwd = collector()
  const back = collector()
  p.connect(1, fwd).connect(0, back)
  for (let i = 0; i < 200; i++) {
    const m = framePool.alloc()
    m.buf[m.off] = i & 0xff
    m.end = m.off + 1
    p.ends[i % 2].enqueue(m)
  }
  s.runFor(0.5)
  t.same(fwd.got, [], 'nothing before the delay')
  s.runFor(10)
  t.equal(back.got.length, 100, 'backward: no loss configured')
  const lost = st.stats().extra['fwd.lost'] as number
  t.ok(lost > 30 && lost < 70, `forward: ${lost} of 100 lost at p=0.5`)
  t.equal(fwd.got.length, 100 - lost)
  p.close()
})

t.test('the IMPAIR module builds from a spec and rejects bad arguments with the position', async t => {
  const s = new Scheduler({ clock: new ManualClock() })
  const g = new ModuleGraph().add(impairModule(s))
  const { path } = buildChain(parseSpec('IMPAIR(loss=0.1, delayMs=2, seed=9)').paths[0]!, g, new Map())
  t.type(path.stages[0], ImpairStage)
  const bad = (src: string, re: RegExp): void => {
    try {
      buildChain(parseSpec(src).paths[0]!, g, new Map())
      t.fail(src)
    } catch (err) {
      t.type(err, PathSpecError)
      t.match((err as Error).message, re)
    }
  }
  bad('IMPAIR(los=0.1)', /<spec>:1:1: IMPAIR: unknown argument 'los' \(accepted: loss,/)
  bad('IMPAIR(loss=abc)', /loss=abc is not a number/)
  bad('IMPAIR(loss=2)', /'loss' must be a probability between 0 and 1, got 2/)
  bad('IMPAIR(0.1)', /takes only named arguments/)
})
