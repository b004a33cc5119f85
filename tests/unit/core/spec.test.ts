import t from 'tap'
import { chain, element, formatChain, parseSpec } from '../../../core/spec.js'
import { PathSpecSyntaxError } from '../../../core/errors.js'

t.test('parses chains, names, arguments, comments and definitions', async t => {
  const spec = parseSpec(`# comment line
def stack = ETH -> IP   # trailing comment
router: tap0 -> ETH -> IP(route) -> ETH -> tap1
tap0 -> stack -> TCP -> PROXY(socks5, port=1080, rules="allow 10.0.0.0/8") ->
   TCP -> IP(addr=10.0.0.1/24) -> ETH -> tap1; mem0 -> ETH
`)
  t.same([...spec.defs.keys()], ['stack'])
  t.equal(spec.paths.length, 3)
  const [router, proxy, third] = spec.paths
  t.equal(router!.name, 'router')
  t.same(router!.elements.map(e => e.name), ['tap0', 'ETH', 'IP', 'ETH', 'tap1'])
  t.same(router!.elements[2]!.args, { positional: ['route'], named: {} })
  t.same([router!.elements[2]!.line, router!.elements[2]!.column], [3, 24])
  t.equal(proxy!.name, null)
  t.same(proxy!.elements.map(e => e.name), ['tap0', 'ETH', 'IP', 'TCP', 'PROXY', 'TCP', 'IP', 'ETH', 'tap1'])
  t.same(proxy!.elements[4]!.args, { positional: ['socks5'], named: { port: '1080', rules: 'allow 10.0.0.0/8' } })
  t.same(proxy!.elements[6]!.args.named, { addr: '10.0.0.1/24' })
  t.same([proxy!.elements[6]!.line, proxy!.elements[6]!.column], [5, 11])
  t.same(third!.elements.map(e => e.name), ['mem0', 'ETH'])
})

t.test('definitions expand to copies (editing one use does not change another)', async t => {
  const spec = parseSpec('def s = IP(a=1)\nx -> s\ny -> s')
  spec.paths[0]!.elements[1]!.args.named.a = '2'
  t.equal(spec.paths[1]!.elements[1]!.args.named.a, '1')
})

t.test('round-trips through formatChain', async t => {
  const src = 'r: tap0 -> IP(route, mtu=1500, note="a b") -> tap1'
  const c = parseSpec(src).paths[0]!
  t.equal(formatChain(c), src)
  t.same(parseSpec(formatChain(c)).paths[0], c)
})

t.test('builds the same structures from TypeScript', async t => {
  const c = chain('tap0', element('IP', ['route']), 'tap1')
  t.equal(formatChain(c), 'tap0 -> IP(route) -> tap1')
})

const bad: [string, string, number, number, RegExp][] = [
  ['missing element after arrow', 'tap0 -> ', 1, 9, /expected a module or device name, got end of input/],
  ['double arrow', 'tap0 -> -> IP', 1, 9, /expected a module or device name, got '->'/],
  ['unclosed paren', 'tap0 -> IP(route\nETH', 1, 11, /'\(' opened here is never closed/],
  ['bad separator in args', 'IP(a b)', 1, 6, /expected ',' or '\)', got 'b'/],
  ['junk after element', 'IP ETH', 1, 4, /expected '->', end of line or ';', got 'ETH'/],
  ['unexpected character', 'IP -> ET!H', 1, 9, /unexpected character '!'/],
  ['unterminated string', 'P(x="abc)\n', 1, 5, /unterminated string/],
  ['def without =', 'def x ETH', 1, 7, /expected '=' after def x, got 'ETH'/],
  ['def twice', 'def x = A\ndef x = B', 2, 5, /'x' is defined twice/],
  ['def with args', 'def x = A\nx(1)', 2, 1, /is a definition and takes no arguments/],
  ['named arg twice', 'A(k=1, k=2)', 1, 8, /argument 'k' given twice/],
  ['missing value', 'A(k=)', 1, 5, /expected a value for k=, got '\)'/],
]
for (const [what, src, line, column, msg] of bad) {
  t.test(`syntax error: ${what}`, async t => {
    try {
      parseSpec(src, 'demo.spec')
      t.fail('should have thrown')
    } catch (err) {
      t.type(err, PathSpecSyntaxError)
      const e = err as PathSpecSyntaxError
      t.equal(e.code, 'PS_ERR_SPEC_SYNTAX')
      t.same([e.line, e.column], [line, column], e.message)
      t.match(e.message, msg)
      t.match(e.message, new RegExp(`^demo\\.spec:${line}:${column}: `))
    }
  })
}
