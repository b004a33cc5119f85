/**
 * MSOCKS: the wire format (exact octets, every truncation, round trips of random
 * counters), the basepoint arithmetic of §III-B.4/B.5 against a 64-bit model (random
 * positions, sequence numbers wrapping), and the client's write ring.
 */
import t from 'tap'
import { Random } from '../../../core/random.js'
import {
  MSOCKS_CMD_RECONNECT, MSOCKS_CONNECT_REPLY_LENGTH, MSOCKS_RECONNECT_LENGTH, MSOCKS_RECONNECT_REPLY_LENGTH, MsocksRep,
  buildReconnect, buildReconnectReply, parseConnectReply, parseReconnect, parseReconnectReply, resplicePoints,
} from '../../../stages/proxy/handlers/msocks.js'
import { WriteRing } from '../../../clients/msocks/ring.js'
import { MSOCKS_CMD_CONNECT, MsocksService, type MsocksMover, type MsocksReconnect } from '../../../stages/proxy/handlers/msocks.js'
import { buildRequest, buildUserPass, socks5Proxy } from '../../../stages/proxy/handlers/socks5.js'
import { FakeSession, cat } from '../../helpers/proxy-fake-session.js'

const SEED = Number(process.env.MSOCKS_SEED ?? Date.now() % 1_000_000)
t.comment(`seed ${SEED} (MSOCKS_SEED=${SEED} to repeat)`)
const rnd = new Random(SEED)
/** A random integer in [0, 2^53). */
const u53 = (): number => (rnd.nextU32() & 0x1f_ffff) * 0x1_0000_0000 + rnd.nextU32()

t.test('RECONNECT request: exact octets', async t => {
  const id = Uint8Array.from({ length: 16 }, (_, i) => i + 1)
  const b = buildReconnect({ id, dataRead: 0x0102_0304_0506, dataWritten: 7 })
  t.equal(b.length, MSOCKS_RECONNECT_LENGTH)
  t.same([...b.subarray(0, 3)], [5, MSOCKS_CMD_RECONNECT, 0], 'VER CMD RSV')
  t.same([...b.subarray(3, 19)], [...id], 'ID')
  t.same([...b.subarray(19, 27)], [0, 0, 1, 2, 3, 4, 5, 6], 'DATA_READ big-endian')
  t.same([...b.subarray(27, 35)], [0, 0, 0, 0, 0, 0, 0, 7], 'DATA_WRITTEN big-endian')
  t.throws(() => buildReconnect({ id: new Uint8Array(15), dataRead: 0, dataWritten: 0 }), RangeError, 'a 15-octet id')
  t.throws(() => buildReconnect({ id, dataRead: -1, dataWritten: 0 }), RangeError, 'a negative counter')
  t.throws(() => buildReconnect({ id, dataRead: 2 ** 53, dataWritten: 0 }), RangeError, 'a counter above 2^53 - 1')
  t.throws(() => buildReconnect({ id, dataRead: 1.5, dataWritten: 0 }), RangeError, 'a fraction')
})

t.test('wire format: random round trips, every prefix needs more, bad octets refused', async t => {
  for (let i = 0; i < 300; i++) {
    const id = rnd.bytes(new Uint8Array(16))
    const r = { id, dataRead: u53(), dataWritten: u53() }
    const b = buildReconnect(r)
    const p = parseReconnect(b)
    if (p.kind !== 'ok') { t.fail(`round trip ${i}: ${JSON.stringify(p)}`); return }
    t.same([p.value.dataRead, p.value.dataWritten, [...p.value.id]], [r.dataRead, r.dataWritten, [...id]])
    t.equal(p.length, MSOCKS_RECONNECT_LENGTH)
    const cut = rnd.int(0, MSOCKS_RECONNECT_LENGTH - 1)
    t.equal(parseReconnect(b.subarray(0, cut)).kind, 'need-more', `prefix of ${cut}`)
    const reply = { rep: rnd.int(0, 255), dataSalvage: u53(), dataWrite: u53() }
    const rb = buildReconnectReply(reply.rep, reply.dataSalvage, reply.dataWrite)
    t.equal(rb.length, MSOCKS_RECONNECT_REPLY_LENGTH)
    const rp = parseReconnectReply(rb)
    t.same(rp.kind === 'ok' ? rp.value : rp, reply)
    t.equal(parseReconnectReply(rb.subarray(0, rnd.int(0, MSOCKS_RECONNECT_REPLY_LENGTH - 1))).kind, 'need-more')
  }
  const good = buildReconnect({ id: new Uint8Array(16), dataRead: 1, dataWritten: 2 })
  const v4 = good.slice()
  v4[0] = 4
  t.equal(parseReconnect(v4).kind, 'error', 'VER 4')
  const big = good.slice()
  big[19] = 0xff
  const pb = parseReconnect(big)
  t.match(pb, { kind: 'error', reason: /2\^53/ }, 'a counter >= 2^53 is refused, not rounded')
  const r2 = buildReconnectReply(0, 0, 0)
  r2[12] = 0x80
  t.equal(parseReconnectReply(r2).kind, 'error', 'a reply counter >= 2^53')
  const wrongCmd = good.slice()
  wrongCmd[1] = 1
  t.equal(parseReconnect(wrongCmd).kind, 'error', 'CMD 1 is not RECONNECT')
})

t.test('MCONNECT reply: 26 octets with the id on success, 10 on failure', async t => {
  const ok = Uint8Array.from([5, 0, 0, 1, 10, 0, 1, 1, 0x9c, 0x40, ...Array.from({ length: 16 }, (_, i) => 0xa0 + i)])
  const p = parseConnectReply(ok)
  t.equal(ok.length, MSOCKS_CONNECT_REPLY_LENGTH)
  t.match(p, { kind: 'ok', length: 26, value: { rep: 0, bindIp: 0x0a000101, bindPort: 40000 } })
  t.same(p.kind === 'ok' ? [...p.value.id!] : null, Array.from({ length: 16 }, (_, i) => 0xa0 + i))
  for (let n = 0; n < 26; n++) t.equal(parseConnectReply(ok.subarray(0, n)).kind, 'need-more', `prefix ${n}`)
  const fail = Uint8Array.from([5, 5, 0, 1, 0, 0, 0, 0, 0, 0])
  t.match(parseConnectReply(fail), { kind: 'ok', length: 10, value: { rep: 5, id: null } }, 'REP 05: plain reply, no id')
  t.equal(parseConnectReply(Uint8Array.from([5, 0, 0, 4])).kind, 'error', 'ATYP 4 (IPv6) is not what this proxy answers')
})

t.test('basepoints (§III-B.4/B.5) agree with a 64-bit model, wrapping included', async t => {
  let salvage = 0
  let ahead = 0
  let exact = 0
  let refusedRead = 0
  let refusedWrite = 0
  for (let i = 0; i < 5000; i++) {
    const readBase = rnd.nextU32()
    const writeBase = rnd.nextU32()
    // Absolute stream positions (octets since the MCONNECT reply), up to 2^44: many wraps.
    const serverHigh = rnd.int(0, 2 ** 20) * 2 ** 24 + rnd.int(0, 2 ** 24)
    const sndUnaC = Math.max(0, serverHigh - rnd.int(0, 1 << 20))
    const kind = rnd.int(0, 3)
    const dataRead = kind === 0 ? sndUnaC : kind === 1 ? Math.max(0, sndUnaC - rnd.int(1, 1 << 20)) : kind === 2 ? Math.min(serverHigh, sndUnaC + rnd.int(0, 1 << 16)) : serverHigh + rnd.int(1, 1 << 20)
    const dataWritten = rnd.int(0, 2 ** 20) * 2 ** 24 + rnd.int(0, 2 ** 24)
    const sndUnaD = rnd.chance(0.9) ? Math.max(0, dataWritten - rnd.int(0, 1 << 20)) : dataWritten + rnd.int(1, 1 << 20)
    const st = {
      readBase, writeBase, sndUnaC: (readBase + sndUnaC) >>> 0, serverHigh: (readBase + serverHigh) >>> 0, sndUnaD: (writeBase + sndUnaD) >>> 0,
    }
    const r = resplicePoints(st, dataRead, dataWritten)
    if (dataRead > serverHigh) {
      refusedRead++
      if (r.ok || !/beyond what the server has sent/.test(r.reason)) { t.fail(`seed ${SEED} case ${i}: data_read beyond the server must be refused: ${JSON.stringify(r)}`); return }
      continue
    }
    if (dataWritten < sndUnaD) {
      refusedWrite++
      if (r.ok || !/below what the server acknowledged/.test(r.reason)) { t.fail(`seed ${SEED} case ${i}: data_written below snd_una_D must be refused: ${JSON.stringify(r)}`); return }
      continue
    }
    if (!r.ok) { t.fail(`seed ${SEED} case ${i}: refused ${r.reason}`); return }
    const wantSalvage = Math.max(0, sndUnaC - dataRead)
    const wantIrs = (readBase + Math.max(sndUnaC, dataRead)) >>> 0
    if (r.dataSalvage !== wantSalvage || r.spliceIrs !== wantIrs || r.dataWrite !== dataWritten - sndUnaD || r.rewriteFrom !== st.sndUnaD) {
      { t.fail(`seed ${SEED} case ${i}: ${JSON.stringify({ r, wantSalvage, wantIrs, dataWrite: dataWritten - sndUnaD })}`); return }
    }
    if (r.figure === 'salvage') salvage++
    else if (r.figure === 'read-ahead') ahead++
    else exact++
  }
  t.ok(salvage > 500 && ahead > 500 && exact > 500 && refusedRead > 500 && refusedWrite > 100, `every case drawn: Fig. 8 ${salvage}, Fig. 9 ${ahead}, exact ${exact}, refused read ${refusedRead}, refused write ${refusedWrite}`)
  t.equal(MsocksRep.BadCounters, 0x81)
})

t.test('basepoints: the paper\'s figures by hand', async t => {
  const st = { readBase: 1000, writeBase: 0xffff_fff0, sndUnaC: 1500, serverHigh: 3000, sndUnaD: 0x10 }
  // Fig. 8: 500 octets acked, 300 read: salvage 200, resume at snd_una_C.
  t.match(resplicePoints(st, 300, 0x30), { ok: true, dataSalvage: 200, spliceIrs: 1500, dataWrite: 0x10, figure: 'salvage' })
  // Fig. 9: 800 read, 500 acked: no salvage, resume at data_read (retransmissions below it chopped).
  t.match(resplicePoints(st, 800, 0x20), { ok: true, dataSalvage: 0, spliceIrs: 1800, dataWrite: 0, figure: 'read-ahead' })
  // Fig. 10 across the 2^32 wrap: written 0x30, the server acked up to writeBase + 0x20.
  t.match(resplicePoints(st, 500, 0x30), { ok: true, dataWrite: 0x10, rewriteFrom: 0x10, figure: 'exact' })
  t.match(resplicePoints(st, 2001, 0x20), { ok: false, reason: /1 octets beyond/ })
  t.match(resplicePoints(st, 500, 0x1f), { ok: false, reason: /1 octets below/ })
})

t.test('write ring keeps exactly the last capacity octets', async t => {
  const cap = rnd.int(1, 5000)
  const ring = new WriteRing(cap)
  const ref: number[] = []
  for (let i = 0; i < 400; i++) {
    const chunk = rnd.bytes(new Uint8Array(rnd.chance(0.05) ? rnd.int(cap, 2 * cap) : rnd.int(0, 300)))
    ring.append(chunk)
    ref.push(...chunk)
    if (ref.length > cap) ref.splice(0, ref.length - cap)
    t.equal(ring.length, ref.length)
    const n = rnd.int(0, ref.length)
    const got = ring.tail(n)
    if (Buffer.compare(Buffer.from(got), Buffer.from(ref.slice(ref.length - n))) !== 0) { t.fail(`seed ${SEED}: tail(${n}) after ${i} appends differs (capacity ${cap})`); return }
  }
  t.throws(() => ring.tail(ring.length + 1), /raise ringBytes/, 'a hole larger than the ring is an error, not silent loss')
  t.throws(() => new WriteRing(0), RangeError)
})

// ------------------------------------------------------------------ the SOCKS5 handler hooks (on a fake session)

t.test('socks5 + msocks: MCONNECT issues an identifier, RECONNECT reaches the mover, errors are clear', async t => {
  const moves: { from: number; to: number; req: MsocksReconnect }[] = []
  const opened: number[] = []
  const msocks = new MsocksService()
  const mover: MsocksMover = {
    opened: s => { opened.push(s.id) },
    forget: () => {},
    move: (from, to, req, reply) => {
      moves.push({ from: from.id, to: to.id, req })
      reply(req.dataRead > 1000 ? { rep: MsocksRep.BadCounters, dataSalvage: 0, dataWrite: 0 } : { rep: 0, dataSalvage: 7, dataWrite: 9 }, 'test')
    },
  }
  msocks.attach(mover)
  const handler = socks5Proxy({ rules: [{ action: 'allow' }], users: { alice: 'a', bob: 'b' }, msocks })
  const auth = (u: string, p: string) => cat(Uint8Array.of(5, 1, 2), buildUserPass(u, p))
  const a = new FakeSession(handler).open()
  a.fromClient(cat(auth('alice', 'a'), buildRequest(MSOCKS_CMD_CONNECT, { type: 'ipv4', ip: 0x0a000102 }, 80)))
  t.same(a.connectedTo, { ip: 0x0a000102, port: 80 }, 'MCONNECT connects like CONNECT')
  a.serverOpen()
  const reply = a.calls.filter(c => c.op === 'writeToClient').at(-1) as { data: Uint8Array }
  t.equal(reply.data.length, MSOCKS_CONNECT_REPLY_LENGTH, 'the success reply carries the 16-octet identifier')
  t.same(a.splices.at(-1), { afterClientBytes: MSOCKS_CONNECT_REPLY_LENGTH }, 'spliced after the whole reply')
  t.same(opened, [a.id], 'the mover recorded the stream bases before the reply')
  const id = reply.data.slice(10)
  const other = parseConnectReply(reply.data)
  t.same(other.kind === 'ok' ? [...other.value.id!] : null, [...id])

  const b = new FakeSession(handler).open()
  b.fromClient(cat(auth('alice', 'a'), buildReconnect({ id, dataRead: 100, dataWritten: 50 })))
  t.match(moves, [{ from: a.id, to: b.id, req: { dataRead: 100, dataWritten: 50 } }], 'RECONNECT went to the mover')
  t.same([...b.toClient.bytes().subarray(-MSOCKS_RECONNECT_REPLY_LENGTH)], [...buildReconnectReply(0, 7, 9)], 'the OK reply with DATA_SALVAGE and DATA_WRITE')
  t.equal(msocks.stats.moved, 1)

  // The identifier now names session b; another user presenting it is refused like a guess.
  const c = new FakeSession(handler).open()
  c.fromClient(cat(auth('bob', 'b'), buildReconnect({ id, dataRead: 0, dataWritten: 0 })))
  t.equal(c.toClient.bytes()[2 + 2 + 1], MsocksRep.UnknownId, 'another user gets X\'80\'')
  t.ok(c.closed, 'and the connection closes')
  t.equal(msocks.stats.wrongUser, 1)
  const d = new FakeSession(handler).open()
  d.fromClient(cat(auth('alice', 'a'), buildReconnect({ id, dataRead: 5000, dataWritten: 0 })))
  t.equal(d.toClient.bytes()[5], MsocksRep.BadCounters, 'the mover\'s refusal is passed on (X\'81\')')
  t.equal(msocks.stats.badCounters, 1)
  const e = new FakeSession(handler).open()
  e.fromClient(cat(auth('alice', 'a'), buildReconnect({ id, dataRead: 1, dataWritten: 1 }), Uint8Array.of(1, 2, 3)))
  t.equal(e.toClient.bytes()[5], MsocksRep.GeneralFailure, 'octets after a RECONNECT, before its reply: X\'01\' and close')
  t.ok(e.closed)
})

t.test('socks5 without msocks: MCONNECT is an unknown command (X\'07\')', async t => {
  const s = new FakeSession(socks5Proxy({ rules: [{ action: 'allow' }] })).open()
  s.fromClient(cat(Uint8Array.of(5, 1, 0), buildRequest(MSOCKS_CMD_CONNECT, { type: 'ipv4', ip: 0x0a000102 }, 80)))
  t.equal(s.connectedTo, null, 'no connection')
  t.same([...s.toClient.bytes().subarray(2)], [5, 7, 0, 1, 0, 0, 0, 0, 0, 0], 'REP 07 command not supported')
})
