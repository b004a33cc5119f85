import t from 'tap'
import { parseIPv4 } from '../../../core/bytes.js'
import { ConfigError } from '../../../core/errors.js'
import { Random, testSeed } from '../../../core/random.js'
import {
  buildGreeting, buildReply, buildRequest, buildUserPass, compileRules, parseGreeting, parseRequest, parseUserPass,
  Socks5Cmd, socks5Proxy, Socks5Rep, SOCKS5_MAX_EARLY_DATA, type Socks5LogEvent, type Socks5Options,
} from '../../../stages/proxy/handlers/socks5.js'
import { ascii, cat, FakeSession, latin1 } from '../../helpers/proxy-fake-session.js'

const seed = testSeed()
t.comment(`seed ${seed} (replay with PATHSPLICE_SEED=${seed})`)

const DST = parseIPv4('10.0.1.2')
const ALLOW_ALL = [{ action: 'allow' as const }]
const NOAUTH = buildGreeting([0x00])
const connectTo = (ip: number | string, port: number): Uint8Array =>
  buildRequest(Socks5Cmd.Connect, { type: 'ipv4', ip: typeof ip === 'string' ? parseIPv4(ip) : ip }, port)
/** The success reply for SERVER_LOCAL (10.0.1.1:50123). */
const OK_REPLY = Uint8Array.of(5, 0, 0, 1, 10, 0, 1, 1, 50123 >> 8, 50123 & 0xff)

function setup(opts: Partial<Socks5Options> = {}): { s: FakeSession; events: Socks5LogEvent[] } {
  const events: Socks5LogEvent[] = []
  const s = new FakeSession(socks5Proxy({ rules: ALLOW_ALL, onLog: e => events.push(e), ...opts })).open()
  return { s, events }
}

/** The reply a refused request gets: VER REP RSV ATYP=1 0.0.0.0:0. */
const refusal = (rep: number): string => latin1(Uint8Array.of(5, rep, 0, 1, 0, 0, 0, 0, 0, 0))

t.test('no-auth CONNECT to IPv4: method 00, connect, splice after the 10-byte reply', async t => {
  const { s, events } = setup({ mode: 'ipfwd' })
  s.fromClient(NOAUTH)
  t.equal(s.toClient.text(), '\x05\x00', 'method 00 chosen')
  s.fromClient(connectTo(DST, 80))
  t.same(s.connectedTo, { ip: DST, port: 80 })
  t.equal(s.toClient.length, 2, 'no reply before the server connection is up')
  s.serverOpen()
  t.same(s.ops(), ['writeToClient', 'connect', 'splice', 'writeToClient'], 'splice is requested before the reply is written')
  t.same(s.splices, [{ afterClientBytes: 10, mode: 'ipfwd' }])
  t.same(s.calls.at(-1), { op: 'writeToClient', data: OK_REPLY }, 'reply: VER 5 REP 0 RSV 0 ATYP 1 BND 10.0.1.1:50123')
  t.equal(s.state, 'spliced', 'the splice happened once the reply went out')
  s.fromClient('after')
  t.equal(s.toServer.text(), 'after', 'later client bytes go straight to the server')
  t.match(events, [
    { type: 'method', method: 0, offered: [0] },
    { type: 'request', allowed: true, dst: '10.0.1.2', port: 80, reply: 0 },
    { type: 'connected', earlyBytes: 0 },
  ])
})

t.test('no-auth CONNECT to a domain name, resolved', async t => {
  const names: string[] = []
  const { s, events } = setup({ resolve: n => (names.push(n), n === 'example.com' ? DST : null) })
  s.fromClient(cat(NOAUTH, buildRequest(Socks5Cmd.Connect, { type: 'domain', name: 'example.com' }, 443)))
  t.same(names, ['example.com'])
  t.same(s.connectedTo, { ip: DST, port: 443 })
  t.match(events.find(e => e.type === 'request'), { dst: 'example.com', ip: DST, allowed: true })
})

t.test('a domain name that does not resolve gets REP 04 host unreachable', async t => {
  const { s } = setup({ resolve: () => null })
  s.fromClient(cat(NOAUTH, buildRequest(Socks5Cmd.Connect, { type: 'domain', name: 'nowhere.invalid' }, 80)))
  t.equal(s.toClient.text(), `\x05\x00${refusal(Socks5Rep.HostUnreachable)}`)
  t.equal(s.connectedTo, null)
  t.ok(s.closed)
})

t.test('without a resolver, domain names get REP 08 address type not supported', async t => {
  const { s } = setup()
  s.fromClient(cat(NOAUTH, buildRequest(Socks5Cmd.Connect, { type: 'domain', name: 'example.com' }, 80)))
  t.equal(s.toClient.text(), `\x05\x00${refusal(Socks5Rep.AddressTypeNotSupported)}`)
  t.equal(s.connectedTo, null)
  t.ok(s.closed)
})

t.test('username/password (RFC 1929): success', async t => {
  const { s, events } = setup({ users: { alice: 'secret' }, rules: [{ action: 'allow', user: 'alice' }] })
  s.fromClient(buildGreeting([0x00, 0x02]))
  t.equal(s.toClient.text(), '\x05\x02', 'method 02 required when users are configured')
  s.fromClient(buildUserPass('alice', 'secret'))
  t.equal(s.toClient.text(), '\x05\x02\x01\x00', 'sub-negotiation VER 1 STATUS 0')
  s.fromClient(connectTo(DST, 22))
  t.same(s.connectedTo, { ip: DST, port: 22 }, 'the user rule allowed it')
  t.match(events, [{ type: 'method', method: 2 }, { type: 'auth', user: 'alice', ok: true }, { type: 'request', user: 'alice', allowed: true }])
})

t.test('username/password: wrong password, unknown user, prototype names: STATUS 1 and close', async t => {
  for (const [user, pass] of [['alice', 'wrong'], ['bob', 'secret'], ['constructor', ''], ['__proto__', 'x'], ['alice', 'secret ']]) {
    const { s, events } = setup({ users: { alice: 'secret' } })
    // The request rides along in the same chunk: it must not be acted on.
    s.fromClient(cat(buildGreeting([0x02]), buildUserPass(user!, pass!), connectTo(DST, 80)))
    t.equal(s.toClient.text(), '\x05\x02\x01\x01', `${user}/${pass}: failure status`)
    t.ok(s.closed, 'closed (RFC 1929 §2)')
    t.equal(s.connectedTo, null, 'no connection')
    t.match(events.at(-1), { type: 'auth', user, ok: false })
    s.fromClient('more')
    t.equal(s.toClient.length, 4, 'bytes after the failure are ignored')
  }
})

t.test('no acceptable method: X\'FF\' and close', async t => {
  const a = setup({ users: { alice: 'secret' } }).s
  a.fromClient(NOAUTH)
  t.equal(a.toClient.text(), '\x05\xff', 'users configured, client offers only 00')
  t.ok(a.closed)
  const b = setup().s
  b.fromClient(buildGreeting([0x02, 0x01]))
  t.equal(b.toClient.text(), '\x05\xff', 'no users, client offers no 00')
  t.ok(b.closed)
  const c = setup().s
  c.fromClient(buildGreeting([]))
  t.equal(c.toClient.text(), '\x05\xff', 'no methods at all')
})

t.test('default deny: without rules every request gets REP 02', async t => {
  const { s, events } = setup({ rules: [] })
  s.fromClient(cat(NOAUTH, connectTo(DST, 80)))
  t.equal(s.toClient.text(), `\x05\x00${refusal(Socks5Rep.NotAllowed)}`)
  t.equal(s.connectedTo, null, 'no open relay')
  t.ok(s.closed)
  t.match(events.at(-1), { type: 'request', allowed: false, reply: 2, reason: 'no rule matched (default deny)' })
})

t.test('deny rules: first match wins', async t => {
  const rules = [
    { action: 'deny' as const, dst: '10.0.1.0/24' },
    { action: 'allow' as const, dst: '10.0.0.0/8', ports: [80, 443] as const },
    { action: 'allow' as const, dst: '192.168.7.7', ports: 22, user: 'ops' },
  ]
  const check = compileRules(rules)
  const cases: [string, number, string | null, boolean, number | null][] = [
    ['10.0.1.5', 80, null, false, 0],
    ['10.0.2.5', 80, null, true, 1],
    ['10.0.2.5', 443, null, true, 1],
    ['10.0.2.5', 444, null, false, null],
    ['10.0.2.5', 22, null, false, null],
    ['192.168.7.7', 22, 'ops', true, 2],
    ['192.168.7.7', 22, 'dev', false, null],
    ['192.168.7.7', 22, null, false, null],
    ['192.168.7.8', 22, 'ops', false, null],
  ]
  for (const [ip, port, user, allowed, rule] of cases) {
    t.match(check(parseIPv4(ip), port, user), { allowed, rule }, `${ip}:${port} user ${user}`)
  }
  const { s } = setup({ rules })
  s.fromClient(cat(NOAUTH, connectTo('10.0.1.5', 80)))
  t.equal(s.toClient.text(), `\x05\x00${refusal(Socks5Rep.NotAllowed)}`, 'the deny rule refuses through the handler')
  t.equal(s.connectedTo, null)
  const { s: s2 } = setup({ rules })
  s2.fromClient(cat(NOAUTH, connectTo('10.0.2.5', 443)))
  t.same(s2.connectedTo, { ip: parseIPv4('10.0.2.5'), port: 443 }, 'and the allow rule lets the other through')
})

t.test('bad rules are configuration errors', async t => {
  for (const r of [
    { action: 'allow' as const, dst: '10.0.1.0/33' },
    { action: 'allow' as const, dst: '10.0.1.1/24' },
    { action: 'allow' as const, dst: '10.0.1/24' },
    { action: 'allow' as const, dst: '10.0.1.0/' },
    { action: 'allow' as const, ports: [90, 80] as const },
    { action: 'allow' as const, ports: 70000 },
    { action: 'permit' as 'allow' },
  ]) {
    t.throws(() => socks5Proxy({ rules: [r] }), ConfigError, JSON.stringify(r))
  }
  t.match(compileRules([{ action: 'allow', dst: '0.0.0.0/0' }])(0xffffffff, 1, null), { allowed: true }, '/0 matches everything')
})

t.test('IPv6 gets REP 08; BIND and UDP ASSOCIATE get REP 07; unknown ATYP gets REP 08', async t => {
  const v6 = buildRequest(Socks5Cmd.Connect, { type: 'ipv6', bytes: new Uint8Array(16).fill(1) }, 80)
  const bind = buildRequest(Socks5Cmd.Bind, { type: 'ipv4', ip: DST }, 80)
  const udp = buildRequest(Socks5Cmd.UdpAssociate, { type: 'ipv4', ip: 0 }, 0)
  const atyp5 = Uint8Array.of(5, 1, 0, 5, 1, 2, 3, 4, 0, 80)
  for (const [name, req, rep] of [['IPv6', v6, 8], ['BIND', bind, 7], ['UDP', udp, 7], ['ATYP 5', atyp5, 8]] as const) {
    const { s } = setup()
    s.fromClient(cat(NOAUTH, req))
    t.equal(s.toClient.text(), `\x05\x00${refusal(rep)}`, name)
    t.equal(s.connectedTo, null, `${name}: no connection`)
    t.ok(s.closed, `${name}: closed`)
  }
})

t.test('CONNECT to port 0 is refused before connecting', async t => {
  const { s } = setup()
  s.fromClient(cat(NOAUTH, connectTo(DST, 0)))
  t.equal(s.toClient.text(), `\x05\x00${refusal(Socks5Rep.HostUnreachable)}`)
  t.equal(s.connectedTo, null)
})

t.test('one byte at a time, and random chunkings, give the same conversation', async t => {
  const rng = new Random(seed)
  const opts = { users: { alice: 'secret' }, resolve: () => DST }
  const input = cat(buildGreeting([0x02]), buildUserPass('alice', 'secret'), buildRequest(Socks5Cmd.Connect, { type: 'domain', name: 'example.com' }, 8080), ascii('early data'))
  const expectClient = '\x05\x02\x01\x00'
  for (let round = 0; round < 60; round++) {
    const { s } = setup(opts)
    if (round === 0) for (const b of input) s.fromClient(Uint8Array.of(b))
    else s.feedClient(input, rng, 1 + (round % 12))
    t.equal(s.toClient.text(), expectClient, `round ${round}: method and auth replies`)
    t.same(s.connectedTo, { ip: DST, port: 8080 }, `round ${round}: connected`)
    s.serverOpen()
    t.equal(s.toServer.text(), 'early data', `round ${round}: early data kept, in order`)
    t.same(s.calls.at(-1), { op: 'writeToClient', data: OK_REPLY })
    if (t.passing() === false) break
  }
})

t.test('pipelined data: kept while connecting, written to the server before splicing', async t => {
  const { s, events } = setup()
  s.fromClient(cat(NOAUTH, connectTo(DST, 80), ascii('GET / HTTP/1.0\r\n')))
  s.fromClient('Host: x\r\n')
  s.fromClient('\r\n')
  t.equal(s.toServer.length, 0, 'nothing reaches the server before it is connected')
  s.serverOpen()
  t.same(s.ops(), ['writeToClient', 'connect', 'writeToServer', 'writeToServer', 'writeToServer', 'splice', 'writeToClient'])
  s.fromClient('body')
  t.equal(s.toServer.text(), 'GET / HTTP/1.0\r\nHost: x\r\n\r\nbody', 'early bytes first, then the spliced stream')
  t.match(events.find(e => e.type === 'connected'), { earlyBytes: 27 })
})

t.test('too much early data resets the session', async t => {
  const { s } = setup()
  s.fromClient(cat(NOAUTH, connectTo(DST, 80)))
  s.fromClient(new Uint8Array(SOCKS5_MAX_EARLY_DATA))
  t.notOk(s.wasReset, 'up to the limit is fine')
  s.fromClient(new Uint8Array(1))
  t.ok(s.wasReset, 'one more byte resets')
})

t.test('splice: false writes the reply, then relays', async t => {
  const { s } = setup({ splice: false })
  s.fromClient(cat(NOAUTH, connectTo(DST, 80), ascii('hi')))
  s.serverOpen()
  t.same(s.ops(), ['writeToClient', 'connect', 'writeToServer', 'writeToClient', 'relay'])
  t.same(s.calls[3], { op: 'writeToClient', data: OK_REPLY })
  t.equal(s.splices.length, 0)
  s.fromClient(' there')
  t.equal(s.toServer.text(), 'hi there', 'relayed after the reply')
})

t.test('connect failures: REP per reason, then close', async t => {
  for (const [why, rep] of [['refused', 5], ['timeout', 4], ['unreachable', 4], ['reset', 1], ['error: boom', 1]] as const) {
    const { s, events } = setup()
    s.fromClient(cat(NOAUTH, connectTo(DST, 80), ascii('early')))
    s.serverError(why)
    t.equal(s.toClient.text(), `\x05\x00${refusal(rep)}`, `${why} -> REP ${rep}`)
    t.ok(s.closed, `${why}: closed`)
    t.equal(s.toServer.length, 0, `${why}: early data dropped`)
    t.match(events.at(-1), { type: 'connect-failed', why, reply: rep })
  }
})

t.test('a failed splice falls back to relaying', async t => {
  const { s } = setup()
  s.holdSplice = true
  s.fromClient(cat(NOAUTH, connectTo(DST, 80)))
  s.serverOpen()
  t.equal(s.state, 'splicing')
  s.failSplice()
  t.equal(s.ops().at(-1), 'relay')
  s.fromClient('x')
  t.equal(s.toServer.text(), 'x')
})

t.test('protocol errors close without a reply', async t => {
  const cases: [string, Uint8Array, string][] = [
    ['greeting version 4', Uint8Array.of(4, 1, 0), ''],
    ['request version 4', cat(NOAUTH, Uint8Array.of(4, 1, 0, 1, 1, 2, 3, 4, 0, 80)), '\x05\x00'],
  ]
  for (const [name, input, reply] of cases) {
    const { s, events } = setup()
    s.fromClient(input)
    t.equal(s.toClient.text(), reply, name)
    t.ok(s.closed, `${name}: closed`)
    t.equal(s.connectedTo, null)
    t.match(events.at(-1), { type: 'protocol-error' })
  }
  const { s } = setup({ users: { a: 'b' } })
  s.fromClient(cat(buildGreeting([2]), Uint8Array.of(5, 1, 0x61, 1, 0x62)))
  t.equal(s.toClient.text(), '\x05\x02', 'sub-negotiation version 5: no status')
  t.ok(s.closed)
})

t.test('parsers: need-more on every prefix, exact lengths, trailing bytes untouched', async t => {
  const msgs = [
    [parseGreeting, buildGreeting([0, 1, 2])],
    [parseUserPass, buildUserPass('üser', 'pässword')],
    [parseRequest, connectTo(DST, 80)],
    [parseRequest, buildRequest(1, { type: 'domain', name: 'a.example' }, 65535)],
    [parseRequest, buildRequest(1, { type: 'ipv6', bytes: new Uint8Array(16) }, 1)],
  ] as const
  for (const [parse, m] of msgs) {
    for (let n = 0; n < m.length; n++) t.same(parse(m.subarray(0, n)), { kind: 'need-more' }, `${parse.name} prefix ${n}/${m.length}`)
    t.match(parse(cat(m, ascii('xyz'))), { kind: 'ok', length: m.length }, `${parse.name} full`)
  }
  t.same(parseGreeting(buildGreeting([0, 2])), { kind: 'ok', value: { methods: [0, 2] }, length: 4 })
  t.same(parseUserPass(buildUserPass('üser', 'pässword')), { kind: 'ok', value: { user: 'üser', password: 'pässword' }, length: 3 + 5 + 9 })
  t.same(parseRequest(buildRequest(1, { type: 'domain', name: 'a.example' }, 65535)), { kind: 'ok', value: { cmd: 1, addr: { type: 'domain', name: 'a.example' }, port: 65535 }, length: 5 + 9 + 2 })
  t.same(parseRequest(connectTo('1.2.3.4', 258)), { kind: 'ok', value: { cmd: 1, addr: { type: 'ipv4', ip: 0x01020304 }, port: 258 }, length: 10 })
  t.match(parseRequest(Uint8Array.of(5, 1, 0, 3, 0, 0, 80)), { kind: 'error', reply: 4 }, 'empty domain name')
  t.match(parseGreeting(Uint8Array.of(4)), { kind: 'error' })
})

t.test('buildReply: RFC 1928 §6 layout', async t => {
  t.same(buildReply(0, parseIPv4('192.0.2.1'), 0x1234), Uint8Array.of(5, 0, 0, 1, 192, 0, 2, 1, 0x12, 0x34))
  t.same(buildReply(5), Uint8Array.of(5, 5, 0, 1, 0, 0, 0, 0, 0, 0))
})
