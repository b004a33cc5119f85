// Runs the node-tap suite and ends with what CI reads (scripts/tap-summary.mjs): the failed
// assertions with their subtest paths and diagnostics, then `N passed, N failed, N skipped`.
// tap's exit code is kept. Extra arguments go to tap (e.g. a file to run alone).
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { tapSummary } from './tap-summary.mjs'

const tapBin = fileURLToPath(new URL('../node_modules/tap/dist/esm/run.mjs', import.meta.url))
const child = spawn(process.execPath, [tapBin, ...process.argv.slice(2)], { stdio: ['ignore', 'pipe', 'inherit'] })

const summary = tapSummary()
let tail = ''
child.stdout.on('data', chunk => {
  process.stdout.write(chunk)
  tail += chunk.toString('utf8')
  const lines = tail.split('\n')
  tail = lines.pop() ?? ''
  for (const line of lines) summary.line(line)
})

child.on('close', (code, signal) => {
  for (const line of summary.end(code)) console.log(line)
  process.exit(code ?? (signal ? 1 : 0))
})
