// scripts/run-tests.mjs, the README's test command: it keeps tap's exit code, repeats the
// failed assertions (subtest path and diagnostics) before its summary line, since CI keeps
// only the tail of the log, and ends with `N passed, N failed, N skipped`.
import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const dir = mkdtempSync(join(tmpdir(), 'pathsplice-run-tests-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const failing = join(dir, 'failing.mjs')
writeFileSync(failing, [
  "import t from 'tap'",
  "t.test('outer', async t => {",
  "  t.test('inner', async t => { t.equal(1, 2, 'one is two'); t.ok(true, 'fine inside') })",
  '})',
  "t.ok(true, 'fine')",
  '',
].join('\n'))
const passing = join(dir, 'passing.mjs')
writeFileSync(passing, "import t from 'tap'\nt.ok(true, 'fine')\nt.skip('later')\n")

/** Runs the test command on one file; the nested tap run takes a few seconds. */
function runTests(file: string): Promise<{ code: number | null; out: string }> {
  return new Promise(resolve => {
    execFile(process.execPath, ['scripts/run-tests.mjs', '--disable-coverage', file], { encoding: 'utf8', timeout: 120_000 }, (e, out) => {
      resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : null, out })
    })
  })
}
const runs = { failing: runTests(failing), passing: runTests(passing) }

t.test('a failure: exit code kept, the failed assertion repeated with its path and diagnostics, then the summary', async t => {
  const r = await runs.failing
  t.not(r.code, 0, 'tap\'s failing exit code')
  const lines = r.out.trimEnd().split('\n')
  t.equal(lines.at(-1), '2 passed, 1 failed, 0 skipped', 'the summary is the last line')
  const at = lines.indexOf('# Failed:')
  t.ok(at > 0, 'a "# Failed:" block')
  const block = lines.slice(at)
  t.ok(block.some(l => /^# - .*failing\.mjs > outer > inner > one is two$/.test(l)), 'the leaf, with its subtest path')
  t.notOk(block.some(l => /^# - .* > outer$/.test(l)), 'not its parents again')
  t.ok(block.some(l => /^# {5}compare: ===$/.test(l)), 'its diagnostics')
  t.ok(block.some(l => /^# {5}fileName: .*failing\.mjs$/.test(l)), 'where it is')
})

t.test('no failure: no "# Failed:" block, exit 0', async t => {
  const r = await runs.passing
  t.equal(r.code, 0)
  t.notMatch(r.out, /# Failed:/)
  t.equal(r.out.trimEnd().split('\n').at(-1), '1 passed, 0 failed, 1 skipped')
})
