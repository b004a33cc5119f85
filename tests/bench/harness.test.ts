import t from 'tap'
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { markdownTable, renderSvg, runBenchmarks, SUITES } from '../../benchmarks/run.js'

t.test('the harness runs a suite in quick mode and writes JSON, SVG and RESULTS.md', async t => {
  const out = t.testdir({})
  const summary = await runBenchmarks({ quick: true, only: ['core-path'], out })
  t.same(summary.files.map(f => basename(f)).sort(), ['RESULTS.md', 'core-path-ns-per-packet.svg', 'core-path.json'])
  const json = JSON.parse(readFileSync(`${out}/core-path.json`, 'utf8')) as { suite: string; quick: boolean; machine: { cores: number }; tables: { rows: unknown[][] }[] }
  t.equal(json.suite, 'core-path')
  t.equal(json.quick, true)
  t.ok(json.machine.cores >= 1)
  t.equal(json.tables[0]!.rows.length, 6)
  for (const row of json.tables[0]!.rows) t.ok(typeof row[1] === 'number' && (row[1] as number) > 0, `${String(row[0])}: a positive ns figure`)
  const md = readFileSync(`${out}/RESULTS.md`, 'utf8')
  t.match(md, /^# pathsplice benchmark results\n\n\d{4}-\d{2}-\d{2}, quick mode, /)
  t.match(md, /\| 5-stage path: enqueue \+ run \+ flush \| [\d.]+ \| [\d.]+ \|/)
  t.match(readFileSync(`${out}/core-path-ns-per-packet.svg`, 'utf8'), /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/)
})

t.test('unknown suites are refused by name', async t => {
  await t.rejects(runBenchmarks({ quick: true, only: ['nope'], out: t.testdir({}) }), /unknown suite\(s\): nope \(known: /)
  t.ok(SUITES.length >= 1)
})

t.test('tables and charts render', async t => {
  t.equal(markdownTable({ title: 'T', columns: ['a', 'b'], rows: [['x', 1234567], ['y', 3.14159]], notes: ['n'] }), '**T**\n\n| a | b |\n|---|---:|\n| x | 1,234,567 |\n| y | 3.14 |\n\n- n')
  const svg = await renderSvg({ data: { values: [{ a: 'x', b: 1 }] }, mark: 'bar', encoding: { x: { field: 'a', type: 'nominal' }, y: { field: 'b', type: 'quantitative' } } })
  t.match(svg, /<svg/)
})
