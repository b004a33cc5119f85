import t from 'tap'
import { SPLICE_REGRESSIONS } from '../helpers/splice-regress.js'
import { runScenario } from '../helpers/splice-random.js'

// Scenarios that failed before the splice-robustness fixes (see the helper for each one's story).
for (const { why, lossy, scenario } of SPLICE_REGRESSIONS) {
  t.test(`seed ${scenario.seed}: ${why}`, async t => {
    const r = runScenario(scenario)
    t.same(r.problems, [], 'every byte once and in order, the splice done, the forwarder idle')
    t.ok(r.longestStallMs <= (lossy ? 12_700 : 400), `no stall beyond a few RTOs (longest ${r.longestStallMs.toFixed(0)} ms)`)
    if (scenario.teardown === 'fin') t.ok(r.spliced || r.refused !== null, 'spliced (or refused because both peers had finished)')
    else t.ok(r.aborted, 'ended by the RST')
  })
}
