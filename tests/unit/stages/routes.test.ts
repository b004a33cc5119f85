import t from 'tap'
import { parseIPv4 } from '../../../core/bytes.js'
import { ConfigError } from '../../../core/errors.js'
import { Random, testSeed } from '../../../core/random.js'
import { RouteTable, parseCidr, prefixMask } from '../../../stages/ip/routes.js'

t.test('longest prefix wins', async t => {
  const r = new RouteTable<string>()
  r.add('0.0.0.0/0', 'default', parseIPv4('10.0.0.254'))
  r.add('10.0.0.0/8', 'ten')
  r.add('10.1.0.0/16', 'ten-one')
  r.add('10.1.2.3/32', 'host')
  t.equal(r.lookup(parseIPv4('10.1.2.3'))?.iface, 'host')
  t.equal(r.lookup(parseIPv4('10.1.2.4'))?.iface, 'ten-one')
  t.equal(r.lookup(parseIPv4('10.2.0.1'))?.iface, 'ten')
  t.equal(r.lookup(parseIPv4('11.0.0.1'))?.iface, 'default')
  t.equal(r.lookup(parseIPv4('11.0.0.1'))?.gateway, parseIPv4('10.0.0.254'))
  t.equal(r.size, 4)
  t.equal(r.describe(), '10.1.2.3/32 dev host\n10.1.0.0/16 dev ten-one\n10.0.0.0/8 dev ten\n0.0.0.0/0 via 10.0.0.254 dev default')
  const v = r.version
  t.ok(r.remove('0.0.0.0/0'))
  t.notOk(r.remove('0.0.0.0/0'))
  t.ok(r.version > v)
  t.equal(r.lookup(parseIPv4('11.0.0.1')), undefined)
  r.add('10.9.9.9/8', 'masked')
  t.equal(r.routes().find(x => x.prefixLength === 8)?.network, parseIPv4('10.0.0.0'), 'host bits are masked off')
  r.removeInterface('masked')
  t.equal(r.lookup(parseIPv4('10.2.0.1')), undefined)
})

t.test('metrics: a worse route does not replace a better one', async t => {
  const r = new RouteTable<string>()
  r.add('10.0.0.0/8', 'a', 0, 5)
  r.add('10.0.0.0/8', 'b', 0, 10)
  t.equal(r.lookup(parseIPv4('10.0.0.1'))?.iface, 'a')
  r.add('10.0.0.0/8', 'c', 0, 1)
  t.equal(r.lookup(parseIPv4('10.0.0.1'))?.iface, 'c')
  t.match(r.describe(), /metric 1/)
})

t.test('bad CIDR text throws ConfigError saying how to fix it', async t => {
  t.same(parseCidr('10.0.0.1'), [parseIPv4('10.0.0.1'), 32])
  t.throws(() => parseCidr('10.0.0/8'), { name: 'ConfigError', message: /expected a\.b\.c\.d\/len/ })
  t.throws(() => parseCidr('10.0.0.0/33'), ConfigError)
  t.throws(() => parseCidr('10.0.0.0/x'), ConfigError)
  t.throws(() => new RouteTable<string>().add([0, 40], 'x'), ConfigError)
  t.equal(prefixMask(0), 0)
  t.equal(prefixMask(32), 0xffffffff)
  t.equal(prefixMask(20), 0xfffff000)
})

t.test('randomized: lookup equals a brute-force longest match', async t => {
  const seed = testSeed()
  t.comment(`seed=${seed}`)
  const rng = new Random(seed)
  const r = new RouteTable<number>()
  const list: { net: number; len: number; id: number }[] = []
  for (let i = 0; i < 300; i++) {
    const len = rng.int(0, 32)
    // Cluster addresses so prefixes overlap often.
    const addr = (0x0a000000 | (rng.nextU32() & (rng.chance(0.5) ? 0xffff : 0xffffff))) >>> 0
    const net = (addr & prefixMask(len)) >>> 0
    const old = list.findIndex(x => x.net === net && x.len === len)
    if (old >= 0) list.splice(old, 1)
    list.push({ net, len, id: i })
    r.add([addr, len], i)
    if (rng.chance(0.1)) {
      const victim = list.splice(rng.int(0, list.length - 1), 1)[0]!
      r.remove([victim.net, victim.len])
    }
  }
  let bad = 0
  for (let i = 0; i < 5000; i++) {
    const dst = (0x0a000000 | (rng.nextU32() & 0xffffff)) >>> 0
    let best: { len: number; id: number } | undefined
    for (const x of list) if (((dst & prefixMask(x.len)) >>> 0) === x.net && (best === undefined || x.len > best.len)) best = x
    if (r.lookup(dst)?.iface !== best?.id) bad++
  }
  t.equal(bad, 0)
  t.equal(r.size, list.length)
})
