import t from 'tap'
import { parseIPv4 } from '../../../core/bytes.js'
import { ConfigError } from '../../../core/errors.js'
import { Random, testSeed } from '../../../core/random.js'
import {
  bodyLength, ChunkedScanner, CONNECT_ESTABLISHED, httpProxy, HTTP_MAX_HEAD_BYTES, isPersistent, parseRequestHead, parseResponseHead,
  type HttpLogEvent, type HttpProxyOptions, type RequestHead, type ResponseHead,
} from '../../../stages/proxy/handlers/http.js'
import { ascii, FakeSession } from '../../helpers/proxy-fake-session.js'

const seed = testSeed()
t.comment(`seed ${seed} (replay with PATHSPLICE_SEED=${seed})`)

const A = { ip: '10.0.1.10', port: 80 }
const B = { ip: '10.0.1.11', port: 8080 }
const C = { ip: '10.0.2.10', port: 80 }
const D = { ip: parseIPv4('10.0.3.10'), port: 81 }
const at = (x: { ip: string | number; port: number }): { ip: number; port: number } => ({ ip: typeof x.ip === 'string' ? parseIPv4(x.ip) : x.ip, port: x.port })
const ROUTES = [
  { host: 'api.example.com', servers: [A, B] },
  { pathPrefix: '/static', servers: [C] },
  { host: '*.example.org', servers: [D] },
  { host: 'empty.example.com', servers: [] },
]

function setup(opts: Partial<HttpProxyOptions> = {}): { s: FakeSession; events: HttpLogEvent[] } {
  const events: HttpLogEvent[] = []
  const s = new FakeSession(httpProxy({ routes: ROUTES, onLog: e => events.push(e), ...opts })).open()
  return { s, events }
}

const get = (path: string, host = 'api.example.com', extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n`
const ok = (body: string, extra = ''): string => `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n${extra}\r\n${body}`
const body = (n: number, c = 'x'): string => c.repeat(n)
const statusOf = (text: string): string => text.split('\r\n')[0]!

/** A session whose first request went out to an open server. */
function connected(opts: Partial<HttpProxyOptions> = {}, first = get('/one')): { s: FakeSession; events: HttpLogEvent[] } {
  const r = setup(opts)
  r.s.fromClient(first)
  r.s.serverOpen()
  return r
}

// ------------------------------------------------------------------ routing

t.test('routing by Host and path prefix, first match wins', async t => {
  const cases: [string, { ip: number; port: number } | null][] = [
    [get('/x'), at(A)],
    [get('/x', 'API.Example.COM:8080'), at(A)],
    [get('/static/app.css', 'www.example.com'), at(C)],
    [get('/static', 'www.example.com'), at(C)],
    [get('/static?v=2', 'www.example.com'), at(C)],
    [get('/staticfile', 'www.example.com'), null],
    [get('/static/x', 'api.example.com'), at(A)],
    [get('/', 'a.b.example.org'), at(D)],
    [get('/', 'example.org'), null],
    ['GET http://api.example.com/x HTTP/1.1\r\nHost: other.example\r\n\r\n', at(A)],
  ]
  for (const [req, want] of cases) {
    const { s } = setup()
    s.fromClient(req)
    t.same(s.connectedTo, want, JSON.stringify(req.split('\r\n').slice(0, 2)))
    if (want === null) t.equal(statusOf(s.toClient.text()), 'HTTP/1.1 404 Not Found', 'no route: 404')
  }
})

t.test('round-robin within a pool, across sessions', async t => {
  const h = httpProxy({ routes: ROUTES })
  const got: unknown[] = []
  for (let i = 0; i < 5; i++) {
    const s = new FakeSession(h).open()
    s.fromClient(get(`/${i}`))
    got.push(s.connectedTo)
  }
  t.same(got, [at(A), at(B), at(A), at(B), at(A)])
})

t.test('default pool, no route (404), empty pool (503)', async t => {
  const { s } = setup({ default: [D] })
  s.fromClient(get('/', 'unknown.example'))
  t.same(s.connectedTo, at(D), 'the default pool takes unmatched requests')
  const { s: s2, events } = setup()
  s2.fromClient(get('/', 'unknown.example'))
  const r404 = s2.toClient.text()
  t.equal(r404, 'HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 14\r\nConnection: close\r\n\r\n404 Not Found\n')
  t.ok(s2.closed)
  t.equal(s2.connectedTo, null)
  t.match(events, [{ type: 'reject', status: 404 }])
  const { s: s3 } = setup()
  s3.fromClient(get('/', 'empty.example.com'))
  t.equal(statusOf(s3.toClient.text()), 'HTTP/1.1 503 Service Unavailable')
  t.equal(s3.connectedTo, null)
})

t.test('the request waits for the server connection, then goes out unchanged', async t => {
  const { s } = setup()
  const req = get('/x', 'api.example.com', 'Accept: */*\r\n')
  s.fromClient(req)
  t.equal(s.toServer.length, 0, 'nothing written before the connection is open')
  s.serverOpen()
  t.equal(s.toServer.text(), req)
  t.same(s.ops(), ['connect', 'writeToServer'])
})

// ------------------------------------------------------------------ keep-alive and splicing

t.test('keep-alive, Content-Length: splice the rest of the body, unsplice, next request', async t => {
  const { s, events } = connected({ mode: 'fwd' })
  const head = 'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n'
  s.fromServer(head + body(100))
  t.equal(s.toClient.text(), head + body(100), 'head and the body bytes that came with it are written')
  t.same(s.splices, [{ mode: 'fwd', unspliceAfterServerBytes: 900 }], 'the rest is spliced, unspliced after 900 bytes')
  t.equal(s.state, 'spliced')
  s.fromServer(body(900, 'y'))
  t.equal(s.state, 'control', 'the forwarder unspliced at the body end')
  t.equal(s.unsplices, 1)
  // The next request is read and routed in control mode; the connection is reused.
  s.fromClient(get('/two'))
  t.equal(s.toServer.text(), get('/one') + get('/two'))
  t.equal(s.ops().filter(o => o === 'connect').length, 1, 'one server connection')
  s.fromServer(ok('small'))
  t.equal(s.toClient.text(), head + body(100) + body(900, 'y') + ok('small'))
  t.equal(s.splices.length, 1, 'a body that came whole is not spliced')
  t.equal(s.state, 'control')
  t.match(events.filter(e => e.type === 'splice'), [{ unspliceAfter: 900 }])
})

t.test('keep-alive conversation in random chunkings: every byte in order', async t => {
  const rng = new Random(seed ^ 0x5eed)
  for (let round = 0; round < 40; round++) {
    const { s } = setup()
    const reqs: string[] = []
    const ress: string[] = []
    for (let i = 0; i < 6; i++) {
      const req = i % 3 === 2
        ? `POST /up${i} HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 7\r\n\r\npayload`
        : i % 3 === 1 ? `HEAD /h${i} HTTP/1.1\r\nHost: api.example.com\r\n\r\n` : get(`/g${i}`)
      const res = req.startsWith('HEAD') ? 'HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n' : ok(body(rng.int(0, 3000), String.fromCharCode(97 + i)))
      reqs.push(req)
      ress.push(res)
      s.feedClient(req, rng, 1 + rng.int(0, 40))
      if (i === 0) s.serverOpen()
      s.feedServer(res, rng, 1 + rng.int(0, 1500))
      t.equal(s.state, 'control', `round ${round} exchange ${i}: back in control mode`)
    }
    t.equal(s.toServer.text(), reqs.join(''), `round ${round}: the server got every request`)
    t.equal(s.toClient.text(), ress.join(''), `round ${round}: the client got every response`)
    t.equal(s.unsplices, s.splices.length, 'every splice was undone at its body end')
    t.ok(s.splices.every(o => o.unspliceAfterServerBytes !== undefined && o.unspliceAfterServerBytes > 0))
    if (!t.passing()) break
  }
})

t.test('chunked response: splice without unsplice', async t => {
  const { s, events } = connected()
  const head = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'
  s.fromServer(`${head}5\r\nhel`)
  t.same(s.splices, [{}], 'spliced to the end: no unspliceAfterServerBytes')
  t.equal(s.toClient.text(), `${head}5\r\nhel`)
  s.fromServer('lo\r\n0\r\n\r\n')
  s.fromClient(get('/next'))
  t.equal(s.toServer.text(), get('/one') + get('/next'), 'later requests go straight through the splice')
  t.match(events.at(-1), { type: 'splice', unspliceAfter: null, why: 'chunked response' })
})

t.test('splice: false follows chunked and Content-Length bodies in control mode', async t => {
  const rng = new Random(seed ^ 0xc4)
  const { s } = connected({ splice: false })
  const r1 = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\n'
  s.feedServer(r1, rng, 4)
  s.fromClient(get('/two'))
  const r2 = ok(body(3000))
  s.feedServer(r2, rng, 700)
  t.equal(s.toClient.text(), r1 + r2)
  t.equal(s.toServer.text(), get('/one') + get('/two'))
  t.same(s.splices, [], 'never spliced')
  t.notOk(s.relaying, 'never relayed: every request was parsed')
})

t.test('HEAD, 204 and 304 responses have no body', async t => {
  const { s } = setup()
  s.fromClient(`HEAD /a HTTP/1.1\r\nHost: api.example.com\r\n\r\n${get('/b')}${get('/c')}`)
  s.serverOpen()
  const r1 = 'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n'
  const r2 = 'HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n'
  const r3 = 'HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n'
  s.fromServer(r1 + r2 + r3)
  t.equal(s.toClient.text(), r1 + r2 + r3, 'three responses, no body read into any')
  t.same(s.splices, [])
  s.fromClient(get('/d'))
  s.fromServer(ok('done'))
  t.equal(s.toClient.text(), r1 + r2 + r3 + ok('done'), 'and the next response parses')
})

t.test('1xx responses are forwarded before the final one', async t => {
  const { s } = setup()
  s.fromClient('POST /up HTTP/1.1\r\nHost: api.example.com\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n')
  s.serverOpen()
  s.fromServer('HTTP/1.1 100 Continue\r\n\r\n')
  t.equal(s.toClient.text(), 'HTTP/1.1 100 Continue\r\n\r\n')
  s.fromClient('data')
  s.fromServer('HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n' + ok('fine'))
  t.equal(s.toClient.text(), 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n' + ok('fine'))
  t.match(s.toServer.text(), /\r\n\r\ndata$/)
  s.fromClient(get('/next'))
  t.match(s.toServer.text(), /GET \/next/, 'the body ended after 4 bytes: the next request is parsed')
})

t.test('request bodies: Content-Length and chunked, with pipelined requests after them', async t => {
  const rng = new Random(seed ^ 0xb0d)
  const reqs = [
    'POST /a HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 11\r\n\r\nhello world',
    'POST /b HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n',
    get('/c'),
  ]
  for (let round = 0; round < 20; round++) {
    const { s } = setup()
    s.feedClient(reqs.join(''), rng, 9)
    s.serverOpen()
    t.equal(s.toServer.text(), reqs.join(''), `round ${round}: bodies relayed, all three requests forwarded`)
    // Three in flight: the first responses are written through, the last may be spliced.
    s.feedServer(ok(body(500)) + ok(body(600, 'b')) + ok(body(700, 'c')), rng, 300)
    t.equal(s.toClient.text(), ok(body(500)) + ok(body(600, 'b')) + ok(body(700, 'c')))
    t.ok(s.splices.length <= 1, 'only the last response, alone in flight, can be spliced')
    t.equal(s.state, 'control')
  }
})

t.test('a request routed to another pool on the same connection: 421 after the response in flight', async t => {
  const { s, events } = connected()
  s.fromClient(get('/static/x.css', 'www.example.com'))
  t.equal(s.toClient.length, 0, 'nothing yet: the first response is still due')
  t.equal(s.toServer.text(), get('/one'), 'the misrouted request does not reach the server')
  s.fromServer(ok('first'))
  t.equal(s.toClient.text().slice(0, ok('first').length), ok('first'))
  t.equal(statusOf(s.toClient.text().slice(ok('first').length)), 'HTTP/1.1 421 Misdirected Request')
  t.ok(s.closed)
  t.match(events.find(e => e.type === 'reject'), { status: 421 })
})

t.test('the same route again picks the same server, not the next in the pool', async t => {
  const { s } = connected()
  s.fromServer(ok('1'))
  s.fromClient(get('/two'))
  s.fromServer(ok('2'))
  t.equal(s.ops().filter(o => o === 'connect').length, 1)
  t.notOk(s.closed)
})

t.test('Connection: close and HTTP/1.0: splice to the end, or close after a whole response', async t => {
  const { s } = connected({}, get('/bye', 'api.example.com', 'Connection: close\r\n'))
  s.fromServer('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123')
  t.same(s.splices, [{}], 'the last response is spliced without unsplice')
  const { s: s2 } = setup()
  s2.fromClient('GET / HTTP/1.0\r\n\r\n')
  t.same(s2.connectedTo, null, 'HTTP/1.0 without Host has no host to route on: 404')
  const { s: s3 } = connected({ default: [A] }, 'GET / HTTP/1.0\r\n\r\n')
  s3.fromServer(ok('whole'))
  t.ok(s3.closed, 'a complete last response: close')
  t.equal(s3.toClient.text(), ok('whole'))
  const { s: s4 } = connected({ default: [A] }, 'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')
  s4.fromServer(ok('ka', 'Connection: keep-alive\r\n'))
  t.notOk(s4.closed, 'HTTP/1.0 keep-alive on both sides persists')
  const { s: s5 } = connected({ default: [A] }, 'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')
  s5.fromServer(ok('no'))
  t.ok(s5.closed, 'an HTTP/1.0 client without keep-alive in the response: close')
  const { s: s6 } = connected()
  s6.fromServer(ok('x', 'Connection: close\r\n'))
  t.ok(s6.closed, 'the server said close')
})

t.test('close-delimited responses and 101 splice to the end', async t => {
  const { s } = connected()
  s.fromServer('HTTP/1.1 200 OK\r\n\r\nstream')
  t.same(s.splices, [{}])
  t.equal(s.toClient.text(), 'HTTP/1.1 200 OK\r\n\r\nstream')
  const { s: s2 } = connected({}, get('/ws', 'api.example.com', 'Upgrade: websocket\r\nConnection: Upgrade\r\n'))
  s2.fromServer('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00')
  t.same(s2.splices, [{}])
  t.equal(s2.toClient.text(), 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00')
  const { s: s3 } = connected({ splice: false })
  s3.fromServer('HTTP/1.1 200 OK\r\n\r\nstream')
  t.ok(s3.relaying, 'splice: false relays instead')
})

t.test('malformed requests: 400 and close', async t => {
  const bad = [
    'HELLO\r\n\r\n',
    'GET / HTTP/1.1\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
    'GET / HTTP/1.1\r\nHost : api.example.com\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: api.example.com\r\nX: a\r\n  folded\r\n\r\n',
    'GET / HTTP/1.1\nHost: api.example.com\n\n',
    'GET  / HTTP/1.1\r\nHost: api.example.com\r\n\r\n',
    'GET foo HTTP/1.1\r\nHost: api.example.com\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 5, 6\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: gzip\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: api.example.com\r\nX: a\x00b\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: api.example.com/evil\r\n\r\n',
  ]
  for (const req of bad) {
    const { s } = setup()
    s.fromClient(req)
    t.equal(statusOf(s.toClient.text()), 'HTTP/1.1 400 Bad Request', JSON.stringify(req))
    t.ok(s.closed)
    t.equal(s.connectedTo, null)
  }
  const { s } = setup()
  s.fromClient('GET / HTTP/2.0\r\nHost: api.example.com\r\n\r\n')
  t.equal(statusOf(s.toClient.text()), 'HTTP/1.1 505 HTTP Version Not Supported')
})

t.test('a broken chunked request body: 400 if it is the only request in flight, else reset', async t => {
  const post = 'POST /u HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello'
  const { s } = connected({}, post)
  s.fromClient('XX')
  t.equal(statusOf(s.toClient.text()), 'HTTP/1.1 400 Bad Request')
  t.ok(s.closed)
  t.equal(s.toServer.text(), post, 'the server got the body up to the error')
  const { s: s2 } = connected({}, `${get('/first')}${post}XX`)
  t.ok(s2.wasReset, 'behind another request: the client cannot be answered in order')
  t.equal(s2.toClient.length, 0)
})

t.test('head size limit: 431 once 16 KiB pass without the end of the head', async t => {
  const { s } = setup()
  const line = `X-Pad: ${'p'.repeat(1000)}\r\n`
  s.fromClient(`GET / HTTP/1.1\r\nHost: api.example.com\r\n`)
  for (let i = 0; i < 20 && s.toClient.length === 0; i++) s.fromClient(line)
  t.ok(s.bytes.fromClient >= HTTP_MAX_HEAD_BYTES, 'not before 16 KiB')
  t.equal(statusOf(s.toClient.text()), 'HTTP/1.1 431 Request Header Fields Too Large')
  t.ok(s.closed)
  t.equal(s.connectedTo, null)
  // Just under the limit is fine.
  const { s: s2 } = setup()
  const pad = HTTP_MAX_HEAD_BYTES - get('/').length - 'X-Pad: \r\n'.length
  s2.fromClient(get('/', 'api.example.com', `X-Pad: ${'p'.repeat(pad)}\r\n`))
  t.same(s2.connectedTo, at(A), 'a head of exactly 16 KiB is read')
  const { s: s3 } = setup()
  s3.fromClient(get('/', 'api.example.com', `X-Pad: ${'p'.repeat(pad + 1)}\r\n`))
  t.equal(statusOf(s3.toClient.text()), 'HTTP/1.1 431 Request Header Fields Too Large', 'one byte more is not')
})

t.test('empty lines before a request-line are skipped', async t => {
  const { s } = connected()
  s.fromServer(ok('1'))
  s.fromClient('\r')
  s.fromClient('\n\r\n' + get('/two'))
  t.equal(s.toServer.text(), get('/one') + get('/two'))
})

t.test('server failures: 502 / 504, closed before responding, bad responses', async t => {
  for (const [why, status] of [['refused', 502], ['unreachable', 502], ['timeout', 504]] as const) {
    const { s } = setup()
    s.fromClient(get('/'))
    s.serverError(why)
    t.equal(statusOf(s.toClient.text()), `HTTP/1.1 ${status} ${status === 502 ? 'Bad Gateway' : 'Gateway Timeout'}`, why)
    t.ok(s.closed)
  }
  const { s } = connected()
  s.fromServer('HTTP/1.1 200 O')
  s.serverEnd()
  t.equal(statusOf(s.toClient.text()), 'HTTP/1.1 502 Bad Gateway', 'server FIN before a whole head')
  for (const res of [
    'garbage\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n',
    'HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n',
    'HTTP/1.1 999 Nope\r\n\r\n',
    `HTTP/1.1 200 OK\r\nX: ${'y'.repeat(HTTP_MAX_HEAD_BYTES)}`,
  ]) {
    const { s } = connected()
    s.fromServer(res)
    t.equal(statusOf(s.toClient.text()), 'HTTP/1.1 502 Bad Gateway', JSON.stringify(res.slice(0, 60)))
    t.ok(s.closed)
  }
  const { s: s2 } = connected()
  s2.fromServer(ok('1') + 'extra')
  t.ok(s2.wasReset, 'bytes no request asked for: reset')
})

t.test('a failed splice: the rest of the body is written through, counted', async t => {
  const { s } = connected()
  s.holdSplice = true
  s.fromServer('HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n' + body(100))
  t.equal(s.state, 'splicing')
  s.fromServer(body(50, 'r')) // relayed while the splice was being tried
  s.failSplice('out-of-order data did not clear')
  s.fromServer(body(150, 'z') + ok('next')) // the rest, then a response no request asked for yet
  t.ok(s.wasReset, 'the body ended after 300 bytes: what follows is unsolicited')
  const { s: s2 } = connected()
  s2.holdSplice = true
  s2.fromServer('HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n' + body(100))
  s2.failSplice()
  s2.fromServer(body(200))
  s2.fromClient(get('/two'))
  s2.fromServer(ok('2'))
  t.equal(s2.toClient.text(), 'HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n' + body(300) + ok('2'))
  t.notOk(s2.wasReset)
})

t.test('CONNECT: off by default (501); allowed, denied (403), not first (421)', async t => {
  const { s } = setup()
  s.fromClient('CONNECT 10.9.9.9:443 HTTP/1.1\r\nHost: 10.9.9.9:443\r\n\r\n')
  t.equal(statusOf(s.toClient.text()), 'HTTP/1.1 501 Not Implemented')
  t.equal(s.connectedTo, null)

  const allowed: [number, number][] = []
  const opts = { allowConnect: true, connectAllow: (ip: number, port: number) => (allowed.push([ip, port]), port === 443), resolve: (n: string) => (n === 'secure.example' ? parseIPv4('10.9.9.9') : null) }
  const { s: s2 } = setup(opts)
  s2.fromClient('CONNECT secure.example:443 HTTP/1.1\r\nHost: secure.example:443\r\n\r\n\x16\x03\x01')
  t.same(s2.connectedTo, { ip: parseIPv4('10.9.9.9'), port: 443 })
  s2.fromClient('hello')
  s2.serverOpen()
  t.same(s2.ops(), ['connect', 'writeToServer', 'splice', 'writeToClient'], 'tunnel bytes first, splice requested before the 200')
  t.same(s2.splices, [{ afterClientBytes: CONNECT_ESTABLISHED.length }])
  t.equal(s2.toClient.text(), 'HTTP/1.1 200 Connection Established\r\n\r\n')
  t.equal(s2.toServer.text(), '\x16\x03\x01hello')
  t.equal(s2.state, 'spliced')

  const { s: s3 } = setup(opts)
  s3.fromClient('CONNECT 10.9.9.9:22 HTTP/1.1\r\nHost: 10.9.9.9:22\r\n\r\n')
  t.equal(statusOf(s3.toClient.text()), 'HTTP/1.1 403 Forbidden')
  t.same(allowed.at(-1), [parseIPv4('10.9.9.9'), 22])

  const { s: s4 } = setup(opts)
  s4.fromClient('CONNECT nowhere.example:443 HTTP/1.1\r\nHost: nowhere.example:443\r\n\r\n')
  t.equal(statusOf(s4.toClient.text()), 'HTTP/1.1 502 Bad Gateway', 'unresolvable')

  const { s: s5 } = connected(opts)
  s5.fromClient('CONNECT 10.9.9.9:443 HTTP/1.1\r\nHost: 10.9.9.9:443\r\n\r\n')
  s5.fromServer(ok('1'))
  t.equal(statusOf(s5.toClient.text().slice(ok('1').length)), 'HTTP/1.1 421 Misdirected Request')

  const { s: s6 } = setup({ ...opts, splice: false })
  s6.fromClient('CONNECT 10.9.9.9:443 HTTP/1.1\r\nHost: 10.9.9.9:443\r\n\r\n')
  s6.serverOpen()
  t.same(s6.ops(), ['connect', 'writeToClient', 'relay'])
})

t.test('options are checked', async t => {
  t.throws(() => httpProxy({ routes: [{ servers: [{ ip: '10.0.0.300', port: 80 }] }] }), ConfigError)
  t.throws(() => httpProxy({ routes: [{ servers: [{ ip: 1, port: 0 }] }] }), ConfigError)
  t.throws(() => httpProxy({ routes: [{ pathPrefix: 'api', servers: [] }] }), ConfigError)
  t.throws(() => httpProxy({ routes: [], default: [{ ip: -1, port: 80 }] }), ConfigError)
})

// ------------------------------------------------------------------ pure helpers

const req = (text: string): RequestHead => {
  const r = parseRequestHead(ascii(text))
  if (r.kind !== 'ok') throw new Error(`not ok: ${JSON.stringify(r)}`)
  return r.head
}
const res = (text: string): ResponseHead => {
  const r = parseResponseHead(ascii(text))
  if (r.kind !== 'ok') throw new Error(`not ok: ${JSON.stringify(r)}`)
  return r.head
}

t.test('parseRequestHead: forms of the request-target (RFC 9112 §3.2)', async t => {
  t.match(req('GET /a?b HTTP/1.1\r\nHost: Example.COM:8080\r\n\r\n'), { method: 'GET', path: '/a?b', host: 'example.com', port: 8080, minor: 1 })
  t.match(req('GET http://x.example/p HTTP/1.1\r\nHost: y.example\r\n\r\n'), { host: 'x.example', path: '/p' })
  t.match(req('GET http://x.example?q HTTP/1.1\r\nHost: y.example\r\n\r\n'), { host: 'x.example', path: '/?q' })
  t.match(req('CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n'), { host: 'a.example', port: 443, path: '' })
  t.match(req('OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n'), { path: '*' })
  t.match(req('GET / HTTP/1.0\r\n\r\n'), { host: null, minor: 0 })
  t.match(req('GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n'), { host: '[::1]', port: 80 })
  const text = '\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nX-Y:  v  \r\n\r\n'
  const r = parseRequestHead(ascii(`${text}BODY`))
  t.match(r, { kind: 'ok', length: text.length }, 'length counts the skipped empty lines, not the body')
  if (r.kind === 'ok') t.same(r.head.fields, [{ name: 'host', value: 'a' }, { name: 'x-y', value: 'v' }])
  for (const bad of ['CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n', 'GET a.example:80 HTTP/1.1\r\nHost: a\r\n\r\n', 'GET * HTTP/1.1\r\nHost: a\r\n\r\n', 'CONNECT a.example HTTP/1.1\r\nHost: a\r\n\r\n']) {
    t.match(parseRequestHead(ascii(bad)), { kind: 'error', status: 400 }, JSON.stringify(bad))
  }
  const full = ascii(get('/x'))
  for (let n = 0; n < full.length; n++) t.same(parseRequestHead(full.subarray(0, n)), { kind: 'need-more' }, `prefix ${n}`)
})

t.test('parseResponseHead', async t => {
  t.match(res('HTTP/1.1 204\r\n\r\n'), { status: 204, reason: '' })
  t.match(res('HTTP/1.0 404 Not Found\r\nServer: x\r\n\r\n'), { status: 404, reason: 'Not Found', minor: 0, fields: [{ name: 'server', value: 'x' }] })
  t.match(parseResponseHead(ascii('HTTP/2 200 OK\r\n\r\n')), { kind: 'error', status: 502 })
  t.same(parseResponseHead(ascii('HTTP/1.1 200 OK\r\n')), { kind: 'need-more' })
})

t.test('bodyLength: RFC 9112 §6.3 rule by rule', async t => {
  const cases: [RequestHead | ResponseHead, string | undefined, unknown][] = [
    [res('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n'), 'HEAD', { kind: 'length', length: 0 }],
    [res('HTTP/1.1 100 Continue\r\n\r\n'), 'GET', { kind: 'length', length: 0 }],
    [res('HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n'), 'GET', { kind: 'length', length: 0 }],
    [res('HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n'), 'GET', { kind: 'length', length: 0 }],
    [res('HTTP/1.1 101 Switching Protocols\r\n\r\n'), 'GET', { kind: 'tunnel' }],
    [res('HTTP/1.1 200 OK\r\n\r\n'), 'CONNECT', { kind: 'tunnel' }],
    [res('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n'), 'GET', { kind: 'invalid' }],
    [res('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n'), 'GET', { kind: 'chunked' }],
    [res('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n'), 'GET', { kind: 'until-close' }],
    [res('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n'), 'GET', { kind: 'invalid' }],
    [res('HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'), 'GET', { kind: 'invalid' }],
    [res('HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n'), 'GET', { kind: 'length', length: 7 }],
    [res('HTTP/1.1 200 OK\r\nContent-Length: 7, 8\r\n\r\n'), 'GET', { kind: 'invalid' }],
    [res('HTTP/1.1 200 OK\r\nContent-Length: +7\r\n\r\n'), 'GET', { kind: 'invalid' }],
    [res('HTTP/1.1 200 OK\r\nContent-Length: 9999999999999999\r\n\r\n'), 'GET', { kind: 'invalid' }],
    [res('HTTP/1.1 200 OK\r\n\r\n'), 'GET', { kind: 'until-close' }],
    [req('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n'), undefined, { kind: 'invalid' }],
    [req('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n'), undefined, { kind: 'chunked' }],
    [req('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n'), undefined, { kind: 'length', length: 0 }],
    [req('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), undefined, { kind: 'length', length: 0 }],
  ]
  for (const [head, method, want] of cases) {
    const line = head.kind === 'request' ? `${head.method} request` : `${head.status} to ${method}`
    t.match(bodyLength(head, method), want, `${line}: ${head.fields.map(f => `${f.name}=${f.value}`).join(' ')}`)
  }
})

t.test('isPersistent: RFC 9112 §9.3', async t => {
  t.equal(isPersistent(res('HTTP/1.1 200 OK\r\n\r\n')), true)
  t.equal(isPersistent(res('HTTP/1.1 200 OK\r\nConnection: foo, Close\r\n\r\n')), false)
  t.equal(isPersistent(res('HTTP/1.0 200 OK\r\n\r\n')), false)
  t.equal(isPersistent(res('HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n')), true)
  t.equal(isPersistent(req('GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n')), false)
})

t.test('ChunkedScanner: ends exactly after the trailer section, in any chunking', async t => {
  const rng = new Random(seed ^ 0xc0ffee)
  const bodies = [
    '0\r\n\r\n',
    '5\r\nhello\r\n0\r\n\r\n',
    'A;name=val\r\n0123456789\r\n1 ; x\r\n!\r\n0\r\nTrailer-A: 1\r\nTrailer-B: 2\r\n\r\n',
    `${(3000).toString(16)}\r\n${'d'.repeat(3000)}\r\n00\r\n\r\n`,
  ]
  for (const b of bodies) {
    for (let round = 0; round < 30; round++) {
      const sc = new ChunkedScanner()
      const data = ascii(b + 'NEXT')
      let used = 0
      let i = 0
      while (i < data.length && !sc.done) {
        const n = Math.min(data.length - i, round === 0 ? 1 : rng.int(1, 50))
        const k = sc.scan(data.subarray(i, i + n))
        used += k
        if (k < n) break
        i += n
      }
      t.ok(sc.done, `${JSON.stringify(b.slice(0, 20))} round ${round}: done`)
      t.equal(used, b.length, 'the body ends right before NEXT')
      t.equal(sc.error, null)
      if (!t.passing()) break
    }
  }
  for (const bad of ['x\r\n', '5\r\nhelloX', '5\nhello', '\r\n', 'fffffffffffffff\r\n', '0\r\nT: 1\n', '5\r\nhello\r\n0\r\n\rX']) {
    const sc = new ChunkedScanner()
    const n = sc.scan(ascii(bad))
    t.ok(sc.error !== null, `${JSON.stringify(bad)}: ${sc.error}`)
    t.ok(n < bad.length)
    t.equal(sc.scan(ascii('more')), 0, 'nothing after an error')
  }
  const sc = new ChunkedScanner()
  t.equal(sc.scan(ascii('3\r\nab')), 5, 'a partial body is all body')
  t.notOk(sc.done)
})
