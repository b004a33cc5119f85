// Runs the node-tap suite and ends with what CI reads: the failed assertions (with the
// subtest path and the first lines of their diagnostics, since CI keeps only the tail of
// the log), then the one summary line `N passed, N failed, N skipped`, taken from tap's
// own `# { total: .. }` summary. tap's exit code is kept. Extra arguments go to tap (e.g.
// a file to run alone).
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const tapBin = fileURLToPath(new URL('../node_modules/tap/dist/esm/run.mjs', import.meta.url))
const child = spawn(process.execPath, [tapBin, ...process.argv.slice(2)], { stdio: ['ignore', 'pipe', 'inherit'] })

/** At most this many failures, each with this many diagnostic lines, are repeated at the end. */
const MAX_FAILURES = 10
const MAX_DIAG_LINES = 30

let summary = null
let tail = ''
/** The open subtests by indentation depth (tap indents a subtest's lines by 4 per level). */
const subtests = []
const failures = []
/** The failure whose YAML diagnostic block is being read, and the block's indentation. */
let reading = null

const onLine = line => {
  const m = /^# (\{ total: .*\})\s*$/.exec(line)
  if (m) summary = m[1]
  const indent = /^ */.exec(line)[0].length
  if (reading) {
    if (line.trim() === '...' && indent === reading.indent) reading = null
    else if (reading.failure.diag.length < MAX_DIAG_LINES) reading.failure.diag.push(line.slice(reading.indent))
    return
  }
  const sub = /^ *# Subtest: (.*)$/.exec(line)
  if (sub) {
    subtests.length = indent / 4
    subtests.push(sub[1])
    return
  }
  const notOk = /^ *not ok \d+ - (.*?)(?: # time=.*)?$/.exec(line)
  // A failed subtest repeats as a failed assertion of its parent; keep only the leaves,
  // which are the ones with their own diagnostics.
  if (notOk && failures.length < MAX_FAILURES) {
    const failure = { where: [...subtests.slice(0, indent / 4), notOk[1]].join(' > '), diag: [] }
    failures.push(failure)
    reading = { failure, indent: indent + 2 }
  }
}

child.stdout.on('data', chunk => {
  process.stdout.write(chunk)
  tail += chunk.toString('utf8')
  const lines = tail.split('\n')
  tail = lines.pop() ?? ''
  for (const line of lines) onLine(line)
})

child.on('close', (code, signal) => {
  const count = key => {
    const m = summary && new RegExp(`\\b${key}: (\\d+)`).exec(summary)
    return m ? Number(m[1]) : 0
  }
  // A parent's "not ok" for a failed subtest has no diagnostics of its own beyond the
  // subtest's; the leaves say what failed.
  const leaves = failures.filter(f => !failures.some(g => g !== f && g.where.startsWith(f.where + ' > ')))
  if (leaves.length > 0) {
    console.log('\n# Failed:')
    for (const f of leaves) {
      console.log(`# - ${f.where}`)
      for (const d of f.diag) console.log(`#     ${d}`)
    }
  }
  const passed = count('pass')
  const failed = count('fail') + (summary === null && code !== 0 ? 1 : 0)
  const skipped = count('skip') + count('todo')
  console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`)
  process.exit(code ?? (signal ? 1 : 0))
})
