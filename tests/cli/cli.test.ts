import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { main } from '../../bin/pathsplice.js'

function capture(): { out: string[]; err: string[]; restore: () => void } {
  const out: string[] = []
  const err: string[] = []
  const log = console.log
  const error = console.error
  console.log = (...a: unknown[]) => void out.push(a.join(' '))
  console.error = (...a: unknown[]) => void err.push(a.join(' '))
  return { out, err, restore: () => ((console.log = log), (console.error = error)) }
}

t.test('check: a good spec prints its paths', async t => {
  const dir = t.testdir({ 'ok.spec': 'def s = ETH -> IP\nr: tap0 -> s -> ETH -> tap1\n' })
  const c = capture()
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
  const c = capture()
  const code = await main(['node', 'pathsplice', 'check', file])
  c.restore()
  t.equal(code, 2)
  t.match(c.err.join('\n'), /bad\.spec:2:9: expected a module or device name, got '->'/)
})

t.test('check: a missing file exits 2 naming it', async t => {
  const c = capture()
  const code = await main(['node', 'pathsplice', 'check', '/nonexistent/x.spec'])
  c.restore()
  t.equal(code, 2)
  t.match(c.err.join('\n'), /cannot read spec file '\/nonexistent\/x.spec': ENOENT/)
})

t.test('demo --json: every configuration moves its bytes with matching digests', async t => {
  const c = capture()
  const code = await main(['node', 'pathsplice', 'demo', '--json', '--packets', '3000', '--swaps', '200', '--seed', '5'])
  c.restore()
  t.equal(code, 0)
  const summary = JSON.parse(c.out.join('\n')) as { seed: number; ok: boolean; configurations: { digestsMatch: boolean; bytesSent: number; bytesReceived: number; swaps: number }[] }
  t.equal(summary.seed, 5)
  t.ok(summary.ok)
  t.equal(summary.configurations.length, 3)
  for (const r of summary.configurations) {
    t.ok(r.digestsMatch)
    t.equal(r.bytesReceived, r.bytesSent)
  }
  t.ok(summary.configurations[2]!.swaps >= 10, 'hot swaps happened during the transfer')
})

t.test('demo: bad numbers are usage errors', async t => {
  const c = capture()
  const code = await main(['node', 'pathsplice', 'demo', '--packets', '-3'])
  c.restore()
  t.equal(code, 2)
  t.match(c.err.join('\n'), /--packets must be a positive integer/)
})

t.test('unknown commands and --help', async t => {
  const c = capture()
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
