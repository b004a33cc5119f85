import t from 'tap'
import { buildChain, buildSpec } from '../../../core/build.js'
import { PathSpecError } from '../../../core/errors.js'
import { ModuleGraph, type Module, type StageContext } from '../../../core/module.js'
import { parseSpec } from '../../../core/spec.js'
import { Dir, PassStage, type Stage } from '../../../core/stage.js'
import { ManualClock } from '../../../core/clock.js'
import { Scheduler } from '../../../core/scheduler.js'
import { MemoryWire } from '../../../drivers/memory/wire.js'

class Tagged extends PassStage {
  constructor(kind: string, up: 0 | 1, readonly args: StageContext['args']) {
    super(kind, up)
  }
}

function mod(name: string, layer: number, next?: (a: Record<string, unknown>) => string | null): Module {
  return {
    name,
    layer,
    summary: `${name} test module`,
    above: next ? ['...'] : [],
    createStage: (ctx): Stage => {
      if (ctx.args.named.bad !== undefined) throw new PathSpecError(`bad=${ctx.args.named.bad} is not accepted (use good=1)`)
      return new Tagged(name, ctx.up, ctx.args)
    },
    ...(next ? { next } : {}),
  }
}

function graph(): ModuleGraph {
  return new ModuleGraph()
    .add(mod('ETH', 2, () => 'IP'))
    .add(mod('IP', 3, a => (a.proto === 6 ? 'TCP' : null)))
    .add(mod('TCP', 4, () => null))
    .add(mod('PROXY', 7))
}

t.test('builds paths from a spec: devices at the ends, stages oriented around the apex', async t => {
  const s = new Scheduler({ clock: new ManualClock() })
  const w = new MemoryWire(s)
  const devices = new Map([['tap0', w.a], ['tap1', w.b]])
  const spec = parseSpec('router: tap0 -> ETH -> IP(route) -> ETH -> tap1\ntap0 -> ETH -> IP -> TCP -> PROXY(socks5) -> TCP -> IP -> ETH -> tap1')
  const [router, proxy] = buildSpec(spec, graph(), devices)
  t.equal(router!.path.name, 'router')
  t.same(router!.devices, [w.a, w.b])
  t.same(router!.path.stages.map(s => s.name), ['eth#1', 'ip#1', 'eth#2'])
  t.same(router!.path.stages.map(s => s.up), [Dir.Forward, Dir.Forward, Dir.Backward])
  t.same((router!.path.stages[1] as Tagged).args.positional, ['route'])
  t.same(proxy!.path.stages.map(s => s.up), [0, 0, 0, 0, 1, 1, 1])
  t.equal(proxy!.path.describe(), `${proxy!.path.name}: [mem0] -> eth#1 -> ip#1 -> tcp#1 -> proxy#1 -> tcp#2 -> ip#2 -> eth#2 -> [mem1]`)
})

t.test('errors name the element position and suggest a fix', async t => {
  const devices = new Map()
  const g = graph()
  const fail = (src: string, re: RegExp, line: number, column: number): void => {
    try {
      buildChain(parseSpec(src, 'f.spec').paths[0]!, g, devices, { source: 'f.spec' })
      t.fail(`should throw: ${src}`)
    } catch (err) {
      t.type(err, PathSpecError)
      const e = err as PathSpecError
      t.match(e.message, re)
      t.same([e.line, e.column], [line, column])
    }
  }
  fail('ETH -> IPP -> TCP', /^f\.spec:1:8: unknown module or device 'IPP' .* Did you mean 'IP'\?/, 1, 8)
  fail('ETH -> IP(bad=3)', /^f\.spec:1:8: IP: bad=3 is not accepted \(use good=1\)/, 1, 8)
  const w = new MemoryWire(new Scheduler({ clock: new ManualClock() }))
  try {
    buildChain(parseSpec('ETH -> tap0 -> IP').paths[0]!, g, new Map([['tap0', w.a]]))
    t.fail('device in the middle')
  } catch (err) {
    t.match((err as Error).message, /device 'tap0' can only stand at either end/)
  }
})

t.test('the module graph walk creates paths like Scout path_create', async t => {
  const g = graph()
  const p = g.createPath('ETH', { proto: 6 }, { name: 'conn' })
  t.same(p.stages.map(s => s.kind), ['ETH', 'IP', 'TCP'])
  t.same(g.createPath('ETH', {}).stages.map(s => s.kind), ['ETH', 'IP'])
  t.throws(() => g.createPath('NOPE'), /unknown module 'NOPE'/)
  const loop = new ModuleGraph().add(mod('A', 1, () => 'A'))
  t.throws(() => loop.createPath('A', {}, { maxStages: 5 }), /exceeded 5 stages/)
  t.match(g.describe(), /ETH\s+ETH test module/)
  t.same(g.names(), ['ETH', 'IP', 'TCP', 'PROXY'])
  t.equal(g.get('eth')?.name, 'ETH', 'case-insensitive lookup')
})
