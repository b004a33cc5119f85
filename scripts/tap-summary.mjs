// What the test command (scripts/run-tests.mjs) says at the end of a node-tap run, read
// from tap's TAP output line by line: the failed assertions, each with its subtest path and
// the first lines of its diagnostics (CI keeps only the tail of the log), then the one
// summary line `N passed, N failed, N skipped` from tap's own `# { total: .. }` summary.

/** At most this many failures, each with this many diagnostic lines, are repeated at the end. */
const MAX_FAILURES = 10
const MAX_DIAG_LINES = 30

/** A reader of TAP lines; `end(exitCode)` returns the closing lines. */
export function tapSummary() {
  let summary = null
  /** The open subtests by depth (tap indents a subtest's lines by 4 per level). */
  const subtests = []
  const failures = []
  /** The failure whose YAML diagnostic block is expected or being read, the block's indentation, whether it began. */
  let reading = null

  const line = text => {
    const m = /^# (\{ total: .*\})\s*$/.exec(text)
    if (m) summary = m[1]
    const indent = /^ */.exec(text)[0].length
    if (reading !== null && !reading.started) {
      // A YAML block follows a "not ok" at once, or there is none.
      if (text.trim() === '---' && indent === reading.indent) {
        reading.started = true
        return
      }
      reading = null
    }
    if (reading !== null) {
      if (text.trim() === '...' && indent === reading.indent) reading = null
      else if (reading.failure.diag.length < MAX_DIAG_LINES) reading.failure.diag.push(text.slice(reading.indent))
      return
    }
    const sub = /^ *# Subtest: (.*)$/.exec(text)
    if (sub) {
      subtests.length = indent / 4
      subtests.push(sub[1])
      return
    }
    const notOk = /^ *not ok \d+ - (.*?)(?: # time=.*)?$/.exec(text)
    if (notOk) {
      const failure = { where: [...subtests.slice(0, indent / 4), notOk[1]].join(' > '), diag: [] }
      failures.push(failure)
      reading = { failure, indent: indent + 2, started: false }
    }
  }

  const end = code => {
    const count = key => {
      const m = summary && new RegExp(`\\b${key}: (\\d+)`).exec(summary)
      return m ? Number(m[1]) : 0
    }
    const out = []
    // A failed subtest repeats as a failed assertion of its parent: the leaves say what failed.
    // (Capped here, not while reading: the parents come after their leaves and would
    // otherwise use up the places.)
    const leaves = failures.filter(f => !failures.some(g => g !== f && g.where.startsWith(f.where + ' > ')))
    if (leaves.length > 0) {
      out.push('', '# Failed:')
      for (const f of leaves.slice(0, MAX_FAILURES)) {
        out.push(`# - ${f.where}`)
        for (const d of f.diag) out.push(`#     ${d}`)
      }
      if (leaves.length > MAX_FAILURES) out.push(`# (and ${leaves.length - MAX_FAILURES} more)`)
    }
    const failed = count('fail') + (summary === null && code !== 0 ? 1 : 0)
    out.push(`${count('pass')} passed, ${failed} failed, ${count('skip') + count('todo')} skipped`)
    return out
  }

  return { line, end }
}
