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
  /** The failure whose YAML diagnostic block is being read, and the block's indentation. */
  let reading = null

  const line = text => {
    const m = /^# (\{ total: .*\})\s*$/.exec(text)
    if (m) summary = m[1]
    const indent = /^ */.exec(text)[0].length
    if (reading) {
      if (text.trim() === '...' && indent === reading.indent) reading = null
      else if (text.trim() === '---' && indent === reading.indent) return
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
    if (notOk && failures.length < MAX_FAILURES) {
      const failure = { where: [...subtests.slice(0, indent / 4), notOk[1]].join(' > '), diag: [] }
      failures.push(failure)
      reading = { failure, indent: indent + 2 }
    }
  }

  const end = code => {
    const count = key => {
      const m = summary && new RegExp(`\\b${key}: (\\d+)`).exec(summary)
      return m ? Number(m[1]) : 0
    }
    const out = []
    // A failed subtest repeats as a failed assertion of its parent: the leaves say what failed.
    const leaves = failures.filter(f => !failures.some(g => g !== f && g.where.startsWith(f.where + ' > ')))
    if (leaves.length > 0) {
      out.push('', '# Failed:')
      for (const f of leaves) {
        out.push(`# - ${f.where}`)
        for (const d of f.diag) out.push(`#     ${d}`)
      }
    }
    const failed = count('fail') + (summary === null && code !== 0 ? 1 : 0)
    out.push(`${count('pass')} passed, ${failed} failed, ${count('skip') + count('todo')} skipped`)
    return out
  }

  return { line, end }
}
