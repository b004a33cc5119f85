import t from 'tap'
import { ManualClock } from '../../../core/clock.js'
import { SpliceStateError } from '../../../core/errors.js'
import { Msg, framePool } from '../../../core/msg.js'
import { Path, type EndTarget } from '../../../core/path.js'
import { Random, testSeed } from '../../../core/random.js'
import { Scheduler } from '../../../core/scheduler.js'
import { Dir, PassStage, Stage, type Dir as DirT } from '../../../core/stage.js'
import { get32, set32 } from '../../../core/bytes.js'

/** Collects what leaves a path end. */
class Sink implements EndTarget {
  readonly name: string
  readonly seqs: number[] = []
  constructor(name = 'sink') {
    this.name = name
  }
  send(batch: Msg[], count: number): void {
    for (let i = 0; i < count; i++) {
      this.seqs.push(get32(batch[i]!.buf, batch[i]!.off))
      batch[i]!.free()
    }
  }
}

function msgWith(n: number): Msg {
  const m = framePool.alloc()
  set32(m.buf, m.off, n)
  m.end = m.off + 64
  return m
}

/** Counts messages per direction and carries the count across a hot swap. */
class Counting extends Stage {
  count = 0
  constructor() {
    super('COUNT')
  }
  deliver(msg: Msg, dir: DirT): void {
    this.count++
    this.send(msg, dir)
  }
  override takeState(old: readonly Stage[], warnings: string[]): void {
    for (const s of old) {
      if (s instanceof Counting) this.count += s.count
      else warnings.push(`cannot take state from ${s.name}`)
    }
  }
}

t.test('messages travel forward and backward through every stage to the ends', async t => {
  const a = new PassStage()
  const b = new PassStage()
  const p = new Path([a, b], { name: 'p' })
  const s0 = new Sink('s0')
  const s1 = new Sink('s1')
  p.connect(0, s0).connect(1, s1)
  p.ends[0].enqueue(msgWith(1))
  p.ends[1].enqueue(msgWith(2))
  t.equal(p.run(), 2)
  p.flush()
  t.same(s1.seqs, [1])
  t.same(s0.seqs, [2])
  t.equal(a.stats().pktsForward, 1)
  t.equal(a.stats().pktsBackward, 1)
  t.equal(b.stats().bytesForward, 64)
  t.same(p.stages.map(s => s.name), ['pass#1', 'pass#2'])
  t.equal(p.describe(), 'p: [s0] -> pass#1 -> pass#2 -> [s1]')
  t.same(p.info().ends.map(e => [e.inPkts, e.outPkts]), [[1, 1], [1, 1]])
})

t.test('output with no target is dropped and counted; closed path frees its queue', async t => {
  const p = new Path([new PassStage()])
  p.ends[0].enqueue(msgWith(1))
  p.run()
  p.flush()
  t.equal(p.ends[1].dropped, 1)
  p.ends[0].enqueue(msgWith(2))
  const before = framePool.stats().inUse
  p.close()
  t.equal(framePool.stats().inUse, before - 1)
  t.ok(p.isClosed)
  t.equal(p.stages.length, 0)
})

t.test('a gated path holds input until ungated', async t => {
  const s = new Scheduler({ clock: new ManualClock() })
  const p = s.adopt(new Path([new PassStage()]))
  const sink = new Sink()
  p.connect(1, sink)
  p.gate()
  p.ends[0].enqueue(msgWith(7))
  s.runFor(10)
  t.same(sink.seqs, [])
  t.equal(p.info().ends[0]!.queued, 1)
  p.ungate()
  s.runFor(10)
  t.same(sink.seqs, [7])
})

t.test('replace swaps a run of stages, calls takeState, reports warnings', async t => {
  const a = new Counting()
  const x = new PassStage('X')
  const b = new PassStage()
  const p = new Path([a, x, b])
  p.ends[0].enqueue(msgWith(1))
  p.run()
  const n = new Counting()
  const warnings = p.replace(a, x, [n])
  t.same(warnings, ['cannot take state from x#1'])
  t.equal(n.count, 1, 'count carried over')
  t.equal(a.path, null)
  t.equal(a.index, -1)
  t.same(p.stages.map(s => s.name), ['count#2', 'pass#1'])
  t.same(p.stages.map(s => s.index), [0, 1])
  t.throws(() => p.replace(b, n, []), SpliceStateError, 'out of order run')
  t.throws(() => p.replace(a, a, []), SpliceStateError, 'stage not in path')
  t.throws(() => p.replace(n, n, [b]), SpliceStateError, 'new stage already linked')
})

t.test('replace refuses to run inside a delivery; betweenMessages defers it', async t => {
  const p = new Path([])
  let threw: unknown = null
  let swapped = false
  class Swapper extends Stage {
    constructor() {
      super('SWAP')
    }
    deliver(msg: Msg, dir: DirT): void {
      try {
        p.replace(this, this, [new PassStage()])
      } catch (err) {
        threw = err
      }
      p.betweenMessages(() => {
        p.replace(this, this, [new PassStage()])
        swapped = true
      })
      t.notOk(swapped, 'deferred until the message completes')
      this.send(msg, dir)
    }
  }
  p.append(new Swapper())
  p.ends[0].enqueue(msgWith(1))
  p.run()
  t.type(threw, SpliceStateError)
  t.ok(swapped)
  t.same(p.stages.map(s => s.kind), ['PASS'])
})

t.test('a stage that throws is counted, never unwinds out of run()', async t => {
  class Bad extends Stage {
    constructor() {
      super('BAD')
    }
    deliver(): void {
      throw new Error('boom')
    }
  }
  const p = new Path([new Bad()])
  p.ends[0].enqueue(msgWith(1))
  t.doesNotThrow(() => p.run())
  t.equal(p.exceptions, 1)
  t.match(String(p.lastError), /boom/)
})

t.test('unlinked stages drop what they are asked to send', async t => {
  const s = new PassStage()
  const m = msgWith(1)
  s.send(m, Dir.Forward)
  t.equal(s.stats().drops.unlinked, 1)
  t.notOk(m.live)
})

t.test('hot swap under load: 10,000 swaps lose, duplicate or reorder nothing', async t => {
  const seed = testSeed()
  t.comment(`seed=${seed} (replay with PATHSPLICE_SEED=${seed})`)
  const rng = new Random(seed)
  const s = new Scheduler({ clock: new ManualClock(), pathBudget: 7, turnBudget: 50 })
  const first = new PassStage()
  let mid: Stage = new Counting()
  const last = new PassStage()
  const p = s.adopt(new Path([first, mid, last]))
  const fwd = new Sink('fwd')
  const back = new Sink('back')
  p.connect(1, fwd).connect(0, back)
  const N = 60_000
  const SWAPS = 10_000
  let sentF = 0
  let sentB = 0
  let swaps = 0
  let gatedSwaps = 0
  const swap = (): void => {
    const next = new Counting()
    const warnings = p.replace(mid, mid, [next])
    if (warnings.length > 0) t.fail(warnings.join())
    mid = next
    swaps++
  }
  // A feeder timer injects bursts in both directions; a swapper timer swaps at random
  // moments: directly between turns, from inside a delivery (betweenMessages), or with
  // the path gated across several turns.
  const feeder = s.timer(() => {
    const burst = rng.int(1, 20)
    for (let i = 0; i < burst && sentF < N; i++) p.ends[0].enqueue(msgWith(sentF++))
    for (let i = 0; i < burst && sentB < N; i++) p.ends[1].enqueue(msgWith(sentB++))
    if (sentF < N || sentB < N) feeder.set(rng.int(0, 2))
  })
  let ungateAt = -1
  const swapper = s.timer(now => {
    if (ungateAt >= 0 && now >= ungateAt) {
      p.ungate()
      ungateAt = -1
    }
    if (swaps < SWAPS) {
      const how = rng.int(0, 2)
      if (how === 0) swap()
      else if (how === 1) p.betweenMessages(swap)
      else if (ungateAt < 0) {
        p.gate()
        swap()
        gatedSwaps++
        ungateAt = now + rng.int(1, 3)
      }
    }
    if (swaps < SWAPS || ungateAt >= 0) swapper.set(rng.next() < 0.5 ? 0 : 1)
  })
  feeder.set(0)
  swapper.set(0)
  s.runUntil(() => fwd.seqs.length === N && back.seqs.length === N && swaps >= SWAPS, 1e7)
  t.ok(swaps >= SWAPS, `${swaps} swaps (${gatedSwaps} while gated)`)
  t.equal(fwd.seqs.length, N, 'every forward message arrived once')
  t.equal(back.seqs.length, N, 'every backward message arrived once')
  let inOrder = true
  for (let i = 0; i < N; i++) if (fwd.seqs[i] !== i || back.seqs[i] !== i) inOrder = false
  t.ok(inOrder, 'in order, no duplicates')
  t.equal((mid as Counting).count, 2 * N, 'the per-stage count survived every swap via takeState')
})

t.test('replace finds the run by index only within its own path', async t => {
  const a = new PassStage('A')
  const b = new PassStage('B')
  const p = new Path([a, b])
  const x = new PassStage('X')
  const y = new PassStage('Y')
  const q = new Path([x, y])
  // y sits at index 1 of q: same index as b in p, but not p's.
  t.throws(() => p.replace(y, y, [new PassStage()]), SpliceStateError, 'a stage of another path')
  t.throws(() => p.replace(a, y, [new PassStage()]), SpliceStateError, 'a run ending in another path')
  t.same(p.stages.map(s => s.name), ['a#1', 'b#1'], 'p unchanged')
  t.same(q.stages.map(s => s.name), ['x#1', 'y#1'], 'q unchanged')
  const n1 = new PassStage('N')
  const n2 = new PassStage('N')
  t.same(p.replace(b, b, [n1, n2]), [])
  t.same(p.stages.map(s => `${s.name}@${s.index}`), ['a#1@0', 'n#1@1', 'n#2@2'], 'several new stages, renumbered')
  t.same(p.replace(a, n1, [new PassStage('Z')]), [])
  t.same(p.stages.map(s => `${s.name}@${s.index}`), ['z#1@0', 'n#2@1'])
  t.equal(a.path, null)
  t.equal(n1.index, -1)
})

t.test('drop counters are per stage, made at the first drop, zeroed by resetStats', async t => {
  const s1 = new PassStage()
  const s2 = new PassStage()
  t.same(s1.drops, {}, 'nothing dropped yet')
  s1.drop(msgWith(1), 'why')
  s1.drop(msgWith(2), 'why')
  t.same(s1.drops, { why: 2 })
  t.same(s2.drops, {}, 'another stage counts nothing of it')
  t.same(new PassStage().drops, {}, 'nor does a new one')
  t.same(s1.stats().drops, { why: 2 })
  const held = s1.drops
  s1.resetStats()
  t.same(s1.drops, {})
  t.same(held, {}, 'a reference taken before the reset sees it zeroed')
  s1.drop(msgWith(3), 'other')
  t.same(s1.drops, { other: 1 })
})
