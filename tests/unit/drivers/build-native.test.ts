// scripts/build-native.mjs: quick when nothing changed, and a clear message without cargo.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const script = fileURLToPath(new URL('../../../scripts/build-native.mjs', import.meta.url))
const crate = fileURLToPath(new URL('../../../drivers/tap/native', import.meta.url))
const built = existsSync(crate) && readdirSync(crate).some(f => /^pathsplice-tap\..+\.node$/.test(f))

t.test('a second build with no source change is a no-op', { skip: built ? false : 'the addon is not built yet' }, async t => {
  const started = Date.now()
  const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 120_000 })
  t.equal(r.status, 0, r.stderr)
  t.match(r.stderr, /up to date|built pathsplice-tap/)
  if (/up to date/.test(r.stderr)) t.ok(Date.now() - started < 5000, 'quick')
})

t.test('without cargo it fails and says what to install', async t => {
  const empty = mkdtempSync(join(tmpdir(), 'ps-nopath-'))
  t.teardown(() => rmSync(empty, { recursive: true, force: true }))
  const r = spawnSync(process.execPath, [script, '--force'], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, PATH: empty } })
  t.equal(r.status, 1)
  t.match(r.stderr, /pathsplice build:native: Rust's `cargo` was not found on PATH.*install it/i)
})
