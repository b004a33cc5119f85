import t from 'tap'
import { testSeed } from '../../core/random.js'
import { lossy, randomScenario, runScenario, type ScenarioOptions } from '../helpers/splice-random.js'

/**
 * Randomized splices end to end (issue 6 "done means"): our TCP at both ends, a proxy
 * that splices at a random moment to FWD or IP/FWD, impaired memory wires, virtual time.
 * SPLICE_SEED=<n> replays one seed (and its neighbours with SPLICE_SEEDS); SPLICE_SEEDS
 * sets how many seeds each half runs; SPLICE_LOSSY=0/1 runs only one half.
 */
const ONE = process.env.SPLICE_SEED
const SEEDS = Number(process.env.SPLICE_SEEDS ?? (ONE !== undefined ? 1 : 150))
const MAX_BYTES = Number(process.env.SPLICE_MAX_BYTES ?? 300_000)

function half(name: string, o: ScenarioOptions): void {
  t.test(`${name}: ${SEEDS} randomized splices`, async t => {
    const base = ONE !== undefined ? Number(ONE) >>> 0 : testSeed()
    t.comment(`seeds ${base}..${(base + SEEDS - 1) >>> 0} (replay one: SPLICE_SEED=<seed> SPLICE_LOSSY=${o.lossy ? 1 : 0})`)
    let failures = 0
    let spliced = 0
    let refused = 0
    let worstStall = 0
    let splicesMs = 0
    const start = Date.now()
    for (let i = 0; i < SEEDS && failures < 5; i++) {
      const seed = (base + i) >>> 0
      const s = randomScenario(seed, o)
      const r = runScenario(s)
      if (r.spliced) {
        spliced++
        splicesMs += r.spliceMs
      }
      if (r.refused !== null) refused++
      worstStall = Math.max(worstStall, r.longestStallMs)
      const problems = [...r.problems]
      if (!lossy(s) && r.rtoTimeouts > 0) problems.push(`${r.rtoTimeouts} RTO timeouts without loss`)
      if (problems.length > 0) {
        failures++
        t.fail(`seed=${seed}: ${problems.join('; ')}`, { scenario: s, result: r })
      }
    }
    t.equal(failures, 0, `all seeds from ${base} passed`)
    t.ok(spliced > SEEDS / 2, `most runs spliced (${spliced}/${SEEDS}, ${refused} refused as both directions had finished)`)
    t.comment(`${SEEDS} seeds in ${Date.now() - start} ms wall; mean splice ${(splicesMs / Math.max(1, spliced)).toFixed(1)} ms virtual; longest stall ${worstStall} ms virtual`)
  })
}

const which = process.env.SPLICE_LOSSY
if (which !== '1') half('reordering, duplication, jitter', { lossy: false, maxBytes: MAX_BYTES })
if (which !== '0') half('plus loss and corruption', { lossy: true, maxBytes: MAX_BYTES })
