/**
 * SOCKS5 BIND (RFC 1928 §4, §6) and MSOCKS MBIND on a fake session: the two replies, the
 * refusals (off by default, rules, timeout, no route), early data, and the identifier in
 * MBIND's second reply.
 */
import t from 'tap'
import { parseIPv4 } from '../../../core/bytes.js'
import { ConfigError } from '../../../core/errors.js'
import { MSOCKS_CMD_BIND, MSOCKS_CONNECT_REPLY_LENGTH, MsocksService, parseConnectReply } from '../../../stages/proxy/handlers/msocks.js'
import { buildGreeting, buildReply, buildRequest, Socks5Cmd, socks5Proxy, Socks5Rep, type Socks5LogEvent, type Socks5Options } from '../../../stages/proxy/handlers/socks5.js'
import type { BoundAddress, ProxySessionApi } from '../../../stages/proxy/session.js'
import { BIND_LOCAL, cat, FakeSession, latin1, SERVER_LOCAL } from '../../helpers/proxy-fake-session.js'

const SRV = parseIPv4('10.0.1.2')
const NOAUTH = buildGreeting([0x00])
const bindReq = (ip: number, port = 0, cmd: number = Socks5Cmd.Bind): Uint8Array => buildRequest(cmd, { type: 'ipv4', ip }, port)
const refusal = (rep: number): string => latin1(buildReply(rep))

function setup(opts: Partial<Socks5Options> = {}): { s: FakeSession; events: Socks5LogEvent[] } {
  const events: Socks5LogEvent[] = []
  const s = new FakeSession(socks5Proxy({ rules: [{ action: 'allow', dst: '10.0.1.0/24' }], bind: true, onLog: e => events.push(e), ...opts })).open()
  return { s, events }
}

t.test('BIND: first reply with the bound address, second with the server that connected, then splice', async t => {
  const { s, events } = setup({ bindTimeoutMs: 5000 })
  s.fromClient(cat(NOAUTH, bindReq(SRV, 0)))
  t.same(s.calls.find(c => c.op === 'acceptFrom'), { op: 'acceptFrom', ip: SRV, timeoutMs: 5000 }, 'listens for DST.ADDR only, with the configured timeout')
  t.equal(s.toClient.text(), `\x05\x00${latin1(buildReply(0, BIND_LOCAL.ip, BIND_LOCAL.port))}`, 'first reply: BND.ADDR/BND.PORT where the server is to connect')
  t.equal(s.splices.length, 0, 'no splice before the server connected')
  s.fromClient('early')
  s.serverOpen(SERVER_LOCAL, 45678)
  const second = latin1(buildReply(0, SRV, 45678))
  t.equal(s.toClient.text().slice(12), second, 'second reply: the connecting host\'s address and port (RFC 1928 §6)')
  t.same(s.splices, [{ afterClientBytes: 10 }], 'spliced after the second reply')
  t.equal(s.state, 'spliced')
  t.equal(s.toServer.text(), 'early', 'bytes sent between the replies reach the server')
  t.match(events, [
    { type: 'method' },
    { type: 'request', cmd: Socks5Cmd.Bind, allowed: true, port: 0 },
    { type: 'bound', ip: BIND_LOCAL.ip, port: BIND_LOCAL.port, expect: SRV },
    { type: 'connected', earlyBytes: 5 },
  ])
})

t.test('BIND is off by default: REP 07, nothing listens', async t => {
  const { s } = setup({ bind: false })
  s.fromClient(cat(NOAUTH, bindReq(SRV)))
  t.equal(s.toClient.text(), `\x05\x00${refusal(Socks5Rep.CommandNotSupported)}`)
  t.notOk(s.calls.some(c => c.op === 'acceptFrom'))
  t.ok(s.closed)
})

t.test('BIND to an address the rules deny: REP 02, nothing listens', async t => {
  const { s, events } = setup()
  s.fromClient(cat(NOAUTH, bindReq(parseIPv4('192.168.7.7'), 21)))
  t.equal(s.toClient.text(), `\x05\x00${refusal(Socks5Rep.NotAllowed)}`)
  t.notOk(s.calls.some(c => c.op === 'acceptFrom'))
  t.match(events.find(e => e.type === 'request'), { allowed: false, reply: Socks5Rep.NotAllowed, reason: /default deny/ })
  t.ok(s.closed)
})

t.test('BIND timeout: the second reply is REP 04 and the session closes', async t => {
  const { s, events } = setup()
  s.fromClient(cat(NOAUTH, bindReq(SRV)))
  t.equal(s.toClient.length, 12)
  s.serverError('timeout')
  t.equal(s.toClient.text().slice(12), refusal(Socks5Rep.HostUnreachable))
  t.ok(s.closed)
  t.equal(s.splices.length, 0)
  t.match(events.at(-1), { type: 'connect-failed', why: 'timeout', reply: Socks5Rep.HostUnreachable })
})

t.test('BIND without a route to DST.ADDR: REP 03 network unreachable', async t => {
  const h = socks5Proxy({ rules: [{ action: 'allow' }], bind: true })
  const s = new FakeSession(h).open()
  // A session whose acceptFrom fails as the forwarder's does without a route.
  ;(s as unknown as { acceptFrom: ProxySessionApi['acceptFrom'] }).acceptFrom = (): BoundAddress => { throw new ConfigError('no route') }
  s.fromClient(cat(NOAUTH, bindReq(parseIPv4('172.16.0.1'))))
  t.equal(s.toClient.text(), `\x05\x00${refusal(Socks5Rep.NetworkUnreachable)}`)
  t.ok(s.closed)
})

t.test('bad bindTimeoutMs is a configuration error', async t => {
  t.throws(() => socks5Proxy({ rules: [], bind: true, bindTimeoutMs: 0 }), ConfigError)
  t.throws(() => socks5Proxy({ rules: [], bind: true, bindTimeoutMs: Number.NaN }), /bindTimeoutMs/)
})

t.test('MBIND: plain first reply, second reply with an identifier; needs msocks and bind', async t => {
  const opened: number[] = []
  const msocks = new MsocksService()
  msocks.attach({ opened: s => opened.push(s.id), move: () => {}, forget: () => {} })
  const { s } = setup({ msocks })
  s.fromClient(cat(NOAUTH, bindReq(SRV, 0, MSOCKS_CMD_BIND)))
  t.equal(s.toClient.length, 12, 'first reply: the plain 10 octets')
  s.serverOpen(SERVER_LOCAL, 40001)
  const r = parseConnectReply(s.toClient.bytes().subarray(12))
  t.equal(s.toClient.length, 12 + MSOCKS_CONNECT_REPLY_LENGTH)
  t.match(r, { kind: 'ok', value: { rep: 0, bindIp: SRV, bindPort: 40001 } })
  t.equal(r.kind === 'ok' ? r.value.id?.length : 0, 16, 'a 16-octet identifier')
  t.same(opened, [s.id], 'the mover recorded the stream bases of the accepted connection')
  t.same(s.splices, [{ afterClientBytes: MSOCKS_CONNECT_REPLY_LENGTH }])
  t.equal(msocks.stats.issued, 1)

  const noBind = setup({ msocks, bind: false }).s
  noBind.fromClient(cat(NOAUTH, bindReq(SRV, 0, MSOCKS_CMD_BIND)))
  t.equal(noBind.toClient.text(), `\x05\x00${refusal(Socks5Rep.CommandNotSupported)}`, 'MBIND without bind: REP 07')
  const noMsocks = setup().s
  noMsocks.fromClient(cat(NOAUTH, bindReq(SRV, 0, MSOCKS_CMD_BIND)))
  t.equal(noMsocks.toClient.text(), `\x05\x00${refusal(Socks5Rep.CommandNotSupported)}`, 'MBIND without msocks: REP 07')
})
