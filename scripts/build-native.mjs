// Builds the native TAP addon (drivers/tap/native) with `napi build --platform --release`
// (@napi-rs/cli). Called by `npm run build:native`, so by `npm install` (prepare → build).
// - Quick when nothing changed: skips the build if the .node file is newer than every
//   source (Cargo.toml, Cargo.lock, src/**). `--force` rebuilds anyway.
// - Fails with a clear message when cargo is missing or the build fails.
// - Offline: the crate uses only the standard library (CARGO_NET_OFFLINE=true).
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const crate = join(root, 'drivers/tap/native')
if (!existsSync(join(crate, 'Cargo.toml'))) process.exit(0)

const fail = msg => {
  console.error(`pathsplice build:native: ${msg}`)
  process.exit(1)
}

if (process.platform !== 'linux') {
  console.error(`pathsplice build:native: skipped, TAP devices need Linux (this is ${process.platform})`)
  process.exit(0)
}

function newestSource(dir) {
  let t = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) t = Math.max(t, newestSource(p))
    else if (e.name.endsWith('.rs')) t = Math.max(t, statSync(p).mtimeMs)
  }
  return t
}

const built = readdirSync(crate).filter(f => /^pathsplice-tap\..+\.node$/.test(f))
const force = process.argv.includes('--force')
if (!force && built.length > 0) {
  const srcTime = Math.max(
    newestSource(join(crate, 'src')),
    ...['Cargo.toml', 'Cargo.lock'].filter(f => existsSync(join(crate, f))).map(f => statSync(join(crate, f)).mtimeMs),
  )
  const binTime = Math.min(...built.map(f => statSync(join(crate, f)).mtimeMs))
  if (binTime >= srcTime) {
    console.error(`pathsplice build:native: ${built.join(', ')} is up to date`)
    process.exit(0)
  }
}

const cargo = spawnSync('cargo', ['--version'], { encoding: 'utf8' })
if (cargo.error || cargo.status !== 0) {
  fail('Rust\'s `cargo` was not found on PATH; the TAP driver is a Rust addon. Install it (apt-get install cargo, or rustup) and run `npm run build:native`.')
}

const napiCli = join(root, 'node_modules/@napi-rs/cli/dist/cli.js')
if (!existsSync(napiCli)) fail('@napi-rs/cli is not installed (it is a devDependency: run `npm install`)')

const t0 = Date.now()
// --no-js: the loader (index.js) and its types (index.d.ts) are hand-written; --strip keeps
// the binary small.
const r = spawnSync(process.execPath, [napiCli, 'build', '--platform', '--release', '--no-js', '--strip', '--cwd', crate], {
  stdio: 'inherit',
  env: { ...process.env, CARGO_NET_OFFLINE: 'true' },
})
if (r.error) fail(`could not run napi build: ${r.error.message}`)
if (r.status !== 0) fail(`napi build failed (exit ${r.status}); see the cargo output above`)
const out = readdirSync(crate).filter(f => /^pathsplice-tap\..+\.node$/.test(f))
if (out.length === 0) fail('napi build finished but produced no pathsplice-tap.*.node file')
console.error(`pathsplice build:native: built ${out.join(', ')} in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
