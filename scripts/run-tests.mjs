// Runs the node-tap suite and ends with the one summary line CI reads:
// `N passed, N failed, N skipped`, taken from tap's own `# { total: .. }` summary.
// tap's exit code is kept. Extra arguments go to tap (e.g. a file to run alone).
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const tapBin = fileURLToPath(new URL('../node_modules/tap/dist/esm/run.mjs', import.meta.url))
const child = spawn(process.execPath, [tapBin, ...process.argv.slice(2)], { stdio: ['ignore', 'pipe', 'inherit'] })

let summary = null
let tail = ''
child.stdout.on('data', chunk => {
  process.stdout.write(chunk)
  tail += chunk.toString('utf8')
  const lines = tail.split('\n')
  tail = lines.pop() ?? ''
  for (const line of lines) {
    const m = /^# (\{ total: .*\})\s*$/.exec(line)
    if (m) summary = m[1]
  }
})

child.on('close', (code, signal) => {
  const count = key => {
    const m = summary && new RegExp(`\\b${key}: (\\d+)`).exec(summary)
    return m ? Number(m[1]) : 0
  }
  const passed = count('pass')
  const failed = count('fail') + (summary === null && code !== 0 ? 1 : 0)
  const skipped = count('skip') + count('todo')
  console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`)
  process.exit(code ?? (signal ? 1 : 0))
})
