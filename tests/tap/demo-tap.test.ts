// `pathsplice demo --tap`: the five configurations with Linux kernel peers in namespaces the
// demo creates (and removes) over TAP; digests both ways, the spliced rows spliced.
import t from 'tap'
import { netAdminUnavailable, run } from '../../drivers/tap/index.js'
import { main } from '../../bin/pathsplice.js'
import type { DemoSummary } from '../../bin/demo.js'

t.test('demo --tap --json', { skip: netAdminUnavailable() ?? false }, async t => {
  const out: string[] = []
  const log = console.log
  console.log = (...a: unknown[]) => void out.push(a.join(' '))
  const code = await main(['node', 'pathsplice', 'demo', '--tap', '--json', '--bytes', '2000000', '--runs', '1']).finally(() => { console.log = log })
  t.equal(code, 0)
  const s = JSON.parse(out.join('')) as DemoSummary
  t.equal(s.network, 'tap')
  t.ok(s.ok, 'all digests matched')
  t.same(s.configurations.map(r => r.config), ['2-path', '1-path', 'FWD', 'IP/FWD', 'IP router'])
  for (const r of s.configurations) {
    t.ok(r.digestsOk, `${r.config}: digests`)
    t.equal(r.bytesUp, 2_000_000)
    t.equal(r.bytesDown, 2_000_000)
    const spliced = r.config === 'FWD' || r.config === 'IP/FWD'
    t.equal(r.splicedAtByte !== null, spliced, `${r.config}: spliced iff FWD or IP/FWD`)
    if (spliced) t.match(r.paths.join('\n'), r.config === 'FWD' ? /-> fwd#1 ->/ : /-> ipfwd#1 ->/)
  }
  const left = (await run('ip', ['netns', 'list'])).stdout
  t.notMatch(left, new RegExp(`psd[cs]-${process.pid}-`), 'the demo removed its namespaces')
})

t.test('demo --tap without root is a usage error naming the reason', { skip: netAdminUnavailable() === null ? 'running as root with TAP: the refusal path cannot be reached here' : false }, async t => {
  const err: string[] = []
  const e = console.error
  console.error = (...a: unknown[]) => void err.push(a.join(' '))
  const code = await main(['node', 'pathsplice', 'demo', '--tap']).finally(() => { console.error = e })
  t.equal(code, 2)
  t.match(err.join('\n'), /demo --tap .*; run `pathsplice demo` without --tap/)
})
