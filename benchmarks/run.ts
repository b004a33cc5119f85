/**
 * `npm run bench`: runs every benchmark suite and writes
 * `benchmarks/results/<date>/<suite>.json`, `<suite>-<chart>.svg` and a `RESULTS.md` with
 * every table, the date and the machine. `--quick` keeps the whole run short; `--only id`
 * runs one suite; `--out DIR` writes elsewhere (tests use a temporary folder).
 * A progress bar goes to stderr when it is a terminal.
 * @module
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as vega from 'vega'
import * as vegaLite from 'vega-lite'
import { machine, resultsDir } from './lib/report.js'
import type { ResultTable, Suite, SuiteContext, SuiteResult } from './lib/suite.js'
import { corePathSuite } from './suites/core-path.js'
import { ipRouterSuite } from './ip-router.bench.js'
import { tcpSuite } from './tcp.bench.js'
import { scoutSegmentSuite } from './suites/scout-segment.js'
import { spliceCostSuite } from './suites/splice-cost.js'
import { memorySuite } from './suites/memory.js'
import { checksumSuite } from './suites/checksum.js'

/** Every suite, in report order. */
export const SUITES: Suite[] = [corePathSuite, ipRouterSuite, tcpSuite, scoutSegmentSuite, spliceCostSuite, memorySuite, checksumSuite]

/** Options of {@link runBenchmarks}. */
export interface RunOptions {
  /** Quick mode. */
  quick: boolean
  /** Suite ids to run (default: all). */
  only?: string[]
  /** Output folder (default `benchmarks/results/<date>`). */
  out?: string
  /** Show a progress bar on stderr. */
  progress?: boolean
  /** Test only: see {@link SuiteContext.smoke}. */
  smoke?: boolean
}

/** What a run produced. */
export interface RunSummary {
  /** Output folder. */
  out: string
  /** Files written. */
  files: string[]
  /** Results per suite id. */
  results: Record<string, SuiteResult>
}

function fmt(v: string | number): string {
  if (typeof v === 'string') return v
  if (Number.isInteger(v)) return v.toLocaleString('en-US')
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2)
}

/** Renders a table as Markdown. */
export function markdownTable(t: ResultTable): string {
  const lines = [`**${t.title}**`, '', `| ${t.columns.join(' | ')} |`, `|${t.columns.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`]
  for (const r of t.rows) lines.push(`| ${r.map(fmt).join(' | ')} |`)
  if (t.notes && t.notes.length > 0) lines.push('', ...t.notes.map(n => `- ${n}`))
  return lines.join('\n')
}

/** Renders a vega-lite spec to an SVG string (no browser, no canvas). */
export async function renderSvg(spec: Record<string, unknown>): Promise<string> {
  const compiled = vegaLite.compile(spec as unknown as vegaLite.TopLevelSpec).spec
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' })
  const svg = await view.toSVG()
  view.finalize()
  return svg
}

function bar(label: string, fraction: number): void {
  const width = 28
  const f = Math.max(0, Math.min(1, fraction))
  const filled = Math.round(f * width)
  process.stderr.write(`\r${label.slice(0, 48).padEnd(48)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.round(f * 100)).padStart(3)}%`)
}

/** Runs the suites and writes the results. */
export async function runBenchmarks(opts: RunOptions): Promise<RunSummary> {
  const date = new Date().toISOString().slice(0, 10)
  const out = opts.out ?? join(resultsDir(), date)
  mkdirSync(out, { recursive: true })
  const suites = opts.only ? SUITES.filter(s => opts.only!.includes(s.id)) : SUITES
  const unknown = (opts.only ?? []).filter(id => !SUITES.some(s => s.id === id))
  if (unknown.length > 0) throw new Error(`unknown suite(s): ${unknown.join(', ')} (known: ${SUITES.map(s => s.id).join(', ')})`)
  const files: string[] = []
  const results: Record<string, SuiteResult> = {}
  const m = machine()
  const md: string[] = [
    '# pathsplice benchmark results',
    '',
    `${date}, ${opts.quick ? 'quick' : 'full'} mode, ${m.cpu} (${m.cores} cores, ${m.memGiB} GiB), Node ${m.node}, Linux ${m.kernel}.`,
    '',
  ]
  for (let i = 0; i < suites.length; i++) {
    const s = suites[i]!
    const label = `[${i + 1}/${suites.length}] ${s.id}`
    const res = await s.run({
      quick: opts.quick || opts.smoke === true,
      ...(opts.smoke ? { smoke: true } : {}),
      progress: (f, what) => {
        if (opts.progress) bar(`${label}: ${what}`, (i + f) / suites.length)
      },
    })
    results[s.id] = res
    const json = join(out, `${s.id}.json`)
    writeFileSync(json, JSON.stringify({ suite: s.id, title: s.title, date: new Date().toISOString(), quick: opts.quick, machine: m, tables: res.tables, data: res.data }, null, 2) + '\n')
    files.push(json)
    md.push(`## ${s.title}`, '')
    for (const t of res.tables) md.push(markdownTable(t), '')
    for (const c of res.charts ?? []) {
      const file = join(out, `${s.id}-${c.name}.svg`)
      writeFileSync(file, await renderSvg(c.spec))
      files.push(file)
      md.push(`![${c.name}](${s.id}-${c.name}.svg)`, '')
    }
  }
  if (opts.progress) {
    bar('done', 1)
    process.stderr.write('\n')
  }
  const mdFile = join(out, 'RESULTS.md')
  writeFileSync(mdFile, md.join('\n'))
  files.push(mdFile)
  return { out, files, results }
}

function usage(): never {
  console.error('usage: npm run bench -- [--quick] [--only id[,id]] [--out DIR]\nsuites: ' + SUITES.map(s => `${s.id} (${s.title})`).join(', '))
  process.exit(2)
}

// CLI entry (not when imported by the harness test).
if (/[\\/]benchmarks[\\/]run\.(js|ts)$/.test(process.argv[1] ?? '')) {
  const args = process.argv.slice(2)
  const opts: RunOptions = { quick: false, progress: process.stderr.isTTY === true }
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    if (a === '--quick') opts.quick = true
    else if (a === '--only') opts.only = (args[++i] ?? usage()).split(',')
    else if (a === '--out') opts.out = args[++i] ?? usage()
    else usage()
  }
  const summary = await runBenchmarks(opts)
  console.log(`wrote ${summary.files.length} files to ${summary.out}`)
}
