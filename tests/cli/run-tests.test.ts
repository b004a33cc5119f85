// What the README's test command (scripts/run-tests.mjs) prints after tap's output, read by
// scripts/tap-summary.mjs: the failed assertions with their subtest paths and diagnostics
// (CI keeps only the tail of the log), then `N passed, N failed, N skipped`. Fed with TAP
// as node-tap 21 prints it (a failing file: an assertion failed two subtests deep).
import t from 'tap'
import { tapSummary } from '../../scripts/tap-summary.mjs'

const FAILING = `TAP version 14
1..1
# Subtest: tests/x/failing.mjs
    # Subtest: outer
        # Subtest: inner
            not ok 1 - one is two
              ---
              compare: ===
              at:
                fileName: tests/x/failing.mjs
                lineNumber: 3
              diff: |
                --- expected
                +++ actual
                -2
                +1
              ...
            ok 2 - fine inside
            1..2
        not ok 1 - inner # time=34.006ms
          ---
          at:
            fileName: tests/x/failing.mjs
          ...
        1..1
    not ok 1 - outer # time=44.248ms
      ---
      at:
        fileName: tests/x/failing.mjs
      ...
    ok 2 - fine
    1..2
not ok 1 - tests/x/failing.mjs # time=56.843ms
  ---
  exitCode: 1
  ...
# { total: 3, pass: 2, fail: 1 }
# time=1260.866ms`

function read(tap: string, code: number | null): string[] {
  const s = tapSummary()
  for (const line of tap.split('\n')) s.line(line)
  return s.end(code)
}

t.test('a failure: the leaf assertion with its subtest path and diagnostics, then the summary line', async t => {
  const out = read(FAILING, 1)
  t.equal(out.at(-1), '2 passed, 1 failed, 0 skipped', 'the summary is the last line')
  t.equal(out[1], '# Failed:')
  t.equal(out[2], '# - tests/x/failing.mjs > outer > inner > one is two', 'the leaf, with its path')
  t.notOk(out.some(l => /^# - .*(> outer|> inner|failing\.mjs)$/.test(l)), 'not its parents again')
  t.ok(out.includes('#     compare: ==='), 'its diagnostics')
  t.ok(out.includes('#       fileName: tests/x/failing.mjs'), 'where it is')
  t.ok(out.includes('#       +1'), 'the diff')
  t.notOk(out.includes('#     ---'), 'without the YAML start marker')
  t.notOk(out.some(l => /^#\s+\.\.\.$/.test(l)), 'the YAML block ends before its "..."')
})

t.test('no failure: only the summary line; todo counts as skipped', async t => {
  t.same(read('TAP version 14\nok 1 - fine\n# { total: 3, pass: 1, skip: 1, todo: 1 }\n', 0), ['1 passed, 0 failed, 2 skipped'])
})

t.test('no tap summary and a failing exit (tap crashed): counted as one failure', async t => {
  t.same(read('TAP version 14\n', 1), ['0 passed, 1 failed, 0 skipped'])
  t.same(read('TAP version 14\n', 0), ['0 passed, 0 failed, 0 skipped'])
})

t.test('at most 10 failures and 30 diagnostic lines each', async t => {
  const many = Array.from({ length: 12 }, (_, i) => `not ok ${i + 1} - f${i}\n  ---\n${Array.from({ length: 40 }, (_, j) => `  l${j}: 1`).join('\n')}\n  ...`).join('\n')
  const out = read(many, 1)
  t.equal(out.filter(l => l.startsWith('# - ')).length, 10)
  t.equal(out.filter(l => l.startsWith('#     l')).length, 10 * 30)
  t.equal(out.at(-2), '# (and 2 more)')
})

t.test('the places go to leaves: failed parents (printed after their leaves) take none', async t => {
  const nested = Array.from({ length: 6 }, (_, i) =>
    `# Subtest: s${i}
    # Subtest: u${i}
        not ok 1 - leaf${i}
        1..1
    not ok 1 - u${i}
    1..1
not ok ${i + 1} - s${i}`).join('\n')
  const leaves = read(nested, 1).filter(l => l.startsWith('# - '))
  t.same(leaves, Array.from({ length: 6 }, (_, i) => `# - s${i} > u${i} > leaf${i}`))
})
