// Loader for the native TAP addon (hand-written; napi-rs generates none without napi-derive).
// `napi build --platform` names the binary after the target triple, e.g.
// pathsplice-tap.linux-x64-gnu.node. The addon is built on the machine that uses it
// (npm install → prepare → build:native), so whichever Linux triple of this CPU exists is
// ours; we fail with a message that says how to build it.
'use strict'
const { existsSync } = require('node:fs')
const { join } = require('node:path')

function load() {
  if (process.platform !== 'linux') {
    throw new Error(`pathsplice TAP driver: TAP devices need Linux (this is ${process.platform})`)
  }
  const candidates = ['gnu', 'musl'].map(libc => join(__dirname, `pathsplice-tap.linux-${process.arch}-${libc}.node`))
  const file = candidates.find(f => existsSync(f))
  if (file === undefined) {
    const err = new Error(`pathsplice TAP driver: native addon ${candidates[0]} is missing; build it with \`npm run build:native\` (needs cargo)`)
    err.code = 'ERR_TAP_ADDON_MISSING'
    throw err
  }
  return require(file)
}

module.exports = load()
