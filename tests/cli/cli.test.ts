import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { main } from '../../bin/pathsplice.js'
import type { DemoSummary } from '../../bin/demo.js'
import { captureConsole } from '../helpers/console-capture.js'


t.test('check: a good spec prints its paths', async t => {
  const dir = t.testdir({ 'ok.spec': 'def s = ETH -> IP\nr: tap0 -> s -> ETH -> tap1\n' })
  const c = captureConsole()
  const code = await main(['node', 'pathsplice', 'check', join(dir, 'ok.spec')])
  c.restore()
  t.equal(code, 0)
  t.same(c.out[0], 'r: tap0 -> ETH -> IP -> ETH -> tap1')
  t.match(c.out[1], /ok, 1 path\(s\), 1 definition\(s\)/)
})

t.test('check: a bad spec exits 2 with file:line:column', async t => {
  const dir = t.testdir({})
  const file = join(dir, 'bad.spec')
  writeFileSync(file, 'tap0 -> ETH\ntap0 -> -> IP\n')
  const c = captureConsole()
  const code = await main(['node', 'pathsplice', 'check', file])
  c.restore()
  t.equal(code, 2)
  t.match(c.err.join('\n'), /bad\.spec:2:9: expected a module or device name, got '->'/)
})

t.test('check: a missing file exits 2 naming it', async t => {
  const c = captureConsole()
  const code = await main(['node', 'pathsplice', 'check', '/nonexistent/x.spec'])
  c.restore()
  t.equal(code, 2)
  t.match(c.err.join('\n'), /cannot read spec file '\/nonexistent\/x.spec': ENOENT/)
})

t.test('demo --json: every configuration moves its bytes both ways with matching digests; the spliced ones splice', async t => {
  const c = captureConsole()
  const code = await main(['node', 'pathsplice', 'demo', '--json', '--bytes', '300000', '--runs', '1', '--seed', '5'])
  c.restore()
  t.equal(code, 0)
  const summary = JSON.parse(c.out.join('\n')) as DemoSummary
  t.equal(summary.seed, 5)
  t.ok(summary.ok)
  t.equal(summary.network, 'memory')
  t.same(summary.configurations.map(r => r.config), ['2-path', '1-path', 'FWD', 'IP/FWD', 'IP router'])
  for (const r of summary.configurations) {
    t.ok(r.digestsOk, `${r.config}: digests`)
    t.equal(r.bytesUp, 300_000, `${r.config}: bytes up`)
    t.equal(r.bytesDown, 300_000, `${r.config}: bytes down`)
    t.ok(r.segmentsPerSec > 0)
    const spliced = r.config === 'FWD' || r.config === 'IP/FWD'
    t.equal(r.splicedAtByte !== null, spliced, `${r.config}: spliced iff FWD or IP/FWD`)
    if (spliced) {
      t.ok(r.splicedAtByte! > 0 && r.splicedAtByte! < 300_000, 'spliced mid-transfer')
      t.ok(r.spliceMs !== null && r.spliceMs > 0)
      t.match(r.paths.join('\n'), r.config === 'FWD' ? /-> fwd#1 ->/ : /-> ipfwd#1 ->/, 'the spliced path holds the final stage')
      t.notMatch(r.paths.join('\n'), /tcp#/, 'no TCP stage left on the spliced path')
    }
  }
  t.equal(summary.configurations[0]!.speedup, 1)
})

t.test('demo: a table with every configuration', async t => {
  const c = captureConsole()
  const code = await main(['node', 'pathsplice', 'demo', '--bytes', '100000', '--runs', '1', '--seed', '9'])
  c.restore()
  t.equal(code, 0)
  const text = c.out.join('\n')
  for (const name of ['2-path', '1-path', 'FWD', 'IP/FWD', 'IP router']) t.match(text, new RegExp(`\\| ${name.replace('/', '\\/')} \\|.*\\| ok \\|`))
  t.match(text, /all digests match both ways/)
})

t.test('demo: bad numbers are usage errors', async t => {
  const c = captureConsole()
  const code = await main(['node', 'pathsplice', 'demo', '--bytes', '-3'])
  c.restore()
  t.equal(code, 2)
  t.match(c.err.join('\n'), /--bytes must be a positive integer/)
})

t.test('unknown commands and --help', async t => {
  const c = captureConsole()
  const w = process.stderr.write
  const o = process.stdout.write
  let printed = ''
  process.stderr.write = ((s: string) => ((printed += s), true)) as typeof process.stderr.write
  process.stdout.write = ((s: string) => ((printed += s), true)) as typeof process.stdout.write
  const bad = await main(['node', 'pathsplice', 'frobnicate'])
  const help = await main(['node', 'pathsplice', '--help'])
  process.stderr.write = w
  process.stdout.write = o
  c.restore()
  t.equal(bad, 2)
  t.equal(help, 0)
  t.match(printed, /unknown command 'frobnicate'/)
  t.match(printed, /Usage: pathsplice/)
})

t.test('--help on every command names its options and the exit codes', async t => {
  for (const cmd of ['demo', 'run', 'paths', 'stats', 'record', 'replay', 'check']) {
    const o = process.stdout.write
    let printed = ''
    process.stdout.write = ((s: string) => ((printed += s), true)) as typeof process.stdout.write
    const code = await main(['node', 'pathsplice', cmd, '--help']).finally(() => { process.stdout.write = o })
    t.equal(code, 0, `${cmd} --help exits 0`)
    t.match(printed, new RegExp(`Usage: pathsplice ${cmd}`), `${cmd}: usage`)
    t.match(printed, /Exit codes: 0 /, `${cmd}: exit codes`)
  }
})
