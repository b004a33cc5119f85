import t from 'tap'
import { parseIPv4 } from '../../../core/bytes.js'
import { ConfigError } from '../../../core/errors.js'
import { Random, testSeed } from '../../../core/random.js'
import * as handlers from '../../../stages/proxy/handlers/index.js'
import { nullProxy, type NullProxyOptions } from '../../../stages/proxy/handlers/null.js'
import type { ProxyHandler } from '../../../stages/proxy/session.js'
import { FakeSession } from '../../helpers/proxy-fake-session.js'

const seed = testSeed()
t.comment(`seed ${seed} (replay with PATHSPLICE_SEED=${seed})`)

const SERVER = parseIPv4('10.0.1.2')

function plug(opts: Partial<NullProxyOptions> = {}): FakeSession {
  return new FakeSession(nullProxy({ server: '10.0.1.2', port: 7, ...opts })).open()
}

t.test('index re-exports the three factories', async t => {
  t.equal(handlers.nullProxy({ server: 1, port: 1 }).name, 'null')
  t.equal(handlers.socks5Proxy({ rules: [] }).name, 'socks5')
  t.equal(handlers.httpProxy({ routes: [] }).name, 'http')
})

t.test('the fake keeps the real session\'s rules', async t => {
  const h: ProxyHandler = { name: 'probe', onClientData() {}, onServerData() {} }
  const s = new FakeSession(h)
  t.throws(() => s.writeToServer(Uint8Array.of(1)), /before connect/)
  t.throws(() => s.splice(), /before connect/)
  s.connect(1, 2)
  t.throws(() => s.connect(1, 2), /twice/)
  s.serverOpen()
  s.writeToServer(Uint8Array.of(1))
  s.splice({ afterClientBytes: 4 })
  t.throws(() => s.writeToServer(Uint8Array.of(1)), /after splice/)
  s.fromServer('a')
  t.equal(s.toClient.text(), 'a', 'no data callback once a splice is requested: relayed')
  t.equal(s.state, 'control', 'not spliced before the 4 bytes went to the client')
  s.writeToClient(Uint8Array.of(0x62, 0x63))
  t.equal(s.state, 'control', '3 of 4')
  s.fromServer('d')
  t.equal(s.state, 'spliced', 'relayed bytes count towards afterClientBytes too')
  t.throws(() => s.writeToClient(Uint8Array.of(1)), /control mode/)
})

t.test('null proxy, splice immediately (default): connect, then splice at once', async t => {
  const s = plug({ mode: 'ipfwd' })
  t.same(s.connectedTo, { ip: SERVER, port: 7 })
  s.fromClient('early')
  s.serverOpen()
  t.same(s.ops(), ['connect', 'splice'])
  t.same(s.splices, [{ mode: 'ipfwd' }])
  t.equal(s.state, 'spliced')
  s.fromClient(' more')
  s.fromServer('reply')
  t.equal(s.toServer.text(), 'early more', 'the client\'s bytes are relayed from the start, in order')
  t.equal(s.toClient.text(), 'reply')
  const s2 = new FakeSession(nullProxy({ server: SERVER, port: 7 })).open()
  t.same(s2.connectedTo, { ip: SERVER, port: 7 }, 'a u32 server works too')
  s2.serverOpen()
  t.same(s2.splices, [{}], 'no mode given: the forwarder\'s default')
})

t.test('null proxy, never: relay only', async t => {
  const s = plug({ splice: 'never' })
  s.serverOpen()
  t.same(s.ops(), ['connect', 'relay'])
  s.fromServer('banner')
  s.fromClient('hello')
  t.equal(s.toClient.text(), 'banner')
  t.equal(s.toServer.text(), 'hello')
  t.same(s.splices, [])
})

t.test('null proxy, afterBytes: write the server\'s first bytes through, splice once n went out', async t => {
  const s = plug({ splice: { afterBytes: 10 } })
  s.serverOpen()
  t.same(s.ops(), ['connect'], 'not spliced at open')
  s.fromServer('abc')
  s.fromServer('defg')
  t.equal(s.state, 'control', '7 bytes: still in control mode')
  t.same(s.splices, [])
  s.fromServer('hijklm')
  t.same(s.ops(), ['connect', 'writeToClient', 'writeToClient', 'splice', 'writeToClient'])
  t.same(s.splices, [{ afterClientBytes: 6 }], 'spliced right after the chunk that reached 10 bytes')
  t.equal(s.state, 'spliced')
  s.fromServer('rest')
  s.fromClient('up')
  t.equal(s.toClient.text(), 'abcdefghijklmrest')
  t.equal(s.toServer.text(), 'up')
})

t.test('null proxy, afterBytes: random chunkings keep the stream whole', async t => {
  const rng = new Random(seed)
  const text = 'SSH-2.0-OpenSSH_9.6\r\n' + 'k'.repeat(200)
  for (let round = 0; round < 40; round++) {
    const s = plug({ splice: { afterBytes: 21 } })
    s.serverOpen()
    s.feedServer(text, rng, 1 + (round % 30))
    t.equal(s.toClient.text(), text, `round ${round}: every byte once, in order`)
    t.equal(s.splices.length, 1, `round ${round}: spliced once`)
    const through = s.calls.filter(c => c.op === 'writeToClient').reduce((n, c) => n + (c as { data: Uint8Array }).data.length, 0)
    t.ok(through >= 21 && through < 21 + 30, `round ${round}: ${through} bytes written by the handler, at least 21`)
    if (!t.passing()) break
  }
  const s = plug({ splice: { afterBytes: 0 } })
  s.serverOpen()
  t.same(s.splices, [{}], 'afterBytes 0 splices at once')
  const e = plug({ splice: { afterBytes: 10 } })
  e.serverOpen()
  e.fromServer('abc')
  e.fromServer('defghij')
  t.same(e.splices, [{ afterClientBytes: 7 }], 'exactly n bytes: spliced right after them')
  t.equal(e.state, 'spliced')
})

t.test('null proxy: a server that cannot be reached resets the client', async t => {
  const s = plug()
  s.serverError('refused')
  t.ok(s.wasReset)
  t.same(s.ops(), ['connect', 'reset'])
})

t.test('null proxy: a failed splice falls back to relaying', async t => {
  const s = plug()
  s.holdSplice = true
  s.serverOpen()
  s.failSplice()
  t.same(s.ops(), ['connect', 'splice', 'relay'])
})

t.test('null proxy: bad options are configuration errors', async t => {
  for (const o of [
    { server: '10.0.0', port: 7 },
    { server: -1, port: 7 },
    { server: 2 ** 32, port: 7 },
    { server: '10.0.0.1', port: 0 },
    { server: '10.0.0.1', port: 65536 },
    { server: '10.0.0.1', port: 7, splice: { afterBytes: -1 } },
    { server: '10.0.0.1', port: 7, splice: { afterBytes: 1.5 } },
  ]) {
    t.throws(() => nullProxy(o), ConfigError, JSON.stringify(o))
  }
})
