// The proxy between Linux kernel peers over TAP devices opened with IFF_VNET_HDR + TSO:
// the kernels hand us GSO super-segments (up to 64 KB) with partial checksums (NEEDS_CSUM:
// the checksum field holds the pseudo-header sum only) and accept ours.
//   1. plug gateway, 1-path x relay/fwd/ipfwd and 2-path x relay/ipfwd: 4 MB down spliced mid-download (fwd, ipfwd:
//      the preliminary FWD and the draining TCBs see super-segments), then 4 MB up;
//      SHA-256 on both ends equal the expected streams
//   2. every frame we write to either TAP is checked as the device would complete it: a
//      full checksum must verify, a NEEDS_CSUM one must hold the pseudo-header sum of its
//      addresses and TCP length at csum_start/csum_offset, a GSO one must not exceed the
//      outgoing MSS. (tshark on the TAPs cannot judge these: a partial checksum looks bad
//      on the wire by design, so the check is made where the frame is written.)
//   3. iperf3 -t 2 through the spliced IP/FWD path
// Namespaces are named pvo*-<pid>-<n> and deleted in teardown.
import t from 'tap'
import { checksum, fold, pseudoHeaderSum } from '../../core/checksum.js'
import { get16, get32 } from '../../core/bytes.js'
import type { Msg } from '../../core/msg.js'
import { haveTool, netAdminUnavailable, type TapDevice } from '../../drivers/tap/index.js'
import type { FwdStage } from '../../stages/fwd/stage.js'
import type { ProxySession } from '../../stages/proxy/session.js'
import {
  CLIENT, DOWN_SEED, DUPLEX_CLIENT, DUPLEX_SERVER, PROXY_A, SERVER, UP_SEED,
  plugGateway, proxyKernelNet, spliceAfter, supervise, type DuplexReport,
} from '../helpers/proxy-kernel.js'
import { xorshiftDigest } from '../helpers/tcp-kernel.js'

const N = 4 * 2 ** 20
const LIMIT_MS = 30_000
const unavailable = netAdminUnavailable()


/** What the frames we wrote to a TAP looked like. */
interface TxAudit { tcp: number; full: number; partial: number; gso: number; bad: string[]; rxGso: number; maxGso: number }

/** Wraps `dev.send` (and the receive handler) to audit every TCP frame as the device would complete it. */
function audit(dev: TapDevice, mss: number): TxAudit {
  const a: TxAudit = { tcp: 0, full: 0, partial: 0, gso: 0, bad: [], rxGso: 0, maxGso: 0 }
  const d = dev as unknown as { send(b: Msg[], n: number): void; handler: ((b: Msg[], n: number) => void) | null }
  const send = d.send.bind(dev)
  d.send = (batch, n) => {
    for (let i = 0; i < n; i++) check(batch[i]!)
    send(batch, n)
  }
  const h = d.handler!
  d.handler = (batch, n) => {
    for (let i = 0; i < n; i++) if ((batch[i]!.vnet?.gsoType ?? 0) !== 0) a.rxGso++
    h(batch, n)
  }
  const fail = (why: string): void => { if (a.bad.length < 5) a.bad.push(why) }
  function check(m: Msg): void {
    const b = m.buf
    if (get16(b, m.off + 12) !== 0x0800) return
    const ip = m.off + 14
    if (b[ip + 9] !== 6) return
    a.tcp++
    const tcp = ip + ((b[ip]! & 15) << 2)
    const len = ip + get16(b, ip + 2) - tcp
    const ps = pseudoHeaderSum(get32(b, ip + 12), get32(b, ip + 16), 6, len)
    const v = m.vnet
    if (v !== null && v.gsoType !== 0) {
      a.gso++
      a.maxGso = Math.max(a.maxGso, v.gsoSize)
      if (v.gsoSize > mss - (((b[tcp + 12]! >>> 4) << 2) - 20)) fail(`gso_size ${v.gsoSize} > MSS ${mss}`)
      if ((v.flags & 1) === 0) fail('GSO frame without NEEDS_CSUM')
    }
    if (v !== null && (v.flags & 1) !== 0) {
      a.partial++
      if (v.csumStart !== tcp - m.off || v.csumOffset !== 16) fail(`csum_start/offset ${v.csumStart}/${v.csumOffset}, TCP at ${tcp - m.off}`)
      else if (get16(b, tcp + 16) !== fold(ps)) fail(`partial sum ${get16(b, tcp + 16).toString(16)} != pseudo-header sum ${fold(ps).toString(16)}`)
    } else {
      a.full++
      if (checksum(b, tcp, len, ps) !== 0) fail(`bad full checksum, ${len} bytes`)
    }
  }
  return a
}

const CASES = [['1-path', 'relay'], ['1-path', 'fwd'], ['1-path', 'ipfwd'], ['2-path', 'relay'], ['2-path', 'ipfwd']] as const
for (const [layout, mode] of CASES) {
  t.test(`VNET_HDR+TSO, plug gateway ${layout} ${mode}: 4 MB down${mode === 'relay' ? '' : ` spliced to ${mode} mid-download`}, then 4 MB up`, { skip: unavailable ?? false }, async t => {
    const net = await proxyKernelNet('pvo', { offloads: 'tso' })
    t.teardown(() => net.close())
    t.ok(net.devC.offloads.tso && net.devS.offloads.tso, 'both TAPs offer TSO')
    const auC = audit(net.devC, 1460)
    const auS = audit(net.devS, 1460)
    let request = null as ReturnType<typeof spliceAfter> | null
    let fwd = null as FwdStage | null
    const errors: string[] = []
    const fw = net.forwarder({
      port: 1080, layout, mode: 'fwd', lingerMs: 1000,
      handler: plugGateway({
        port: 5001,
        onServerOpen: s => { if (mode !== 'relay') request = spliceAfter(s, N >> 2, { mode }) },
        onSpliced: s => { fwd = fw.sessions.get(s as ProxySession)?.fwd ?? null },
        onSpliceFailed: (_s, why) => errors.push(why),
      }),
    })
    const srv = supervise(net.serverNs.spawn(process.execPath, ['-e', DUPLEX_SERVER, SERVER, '5001', String(N), String(LIMIT_MS)]), 'kernel server', LIMIT_MS)
    await srv.ready(/listening/)
    const cli = supervise(net.clientNs.spawn(process.execPath, ['-e', DUPLEX_CLIENT, PROXY_A, '1080', String(N), String(LIMIT_MS), 'sequential']), 'kernel client', LIMIT_MS)
    const [cOut, sOut] = await Promise.all([cli.done, srv.done])
    const c = JSON.parse(cOut) as DuplexReport
    const s = JSON.parse(sOut.trim().split('\n').pop()!) as DuplexReport
    t.equal(c.rdigest, xorshiftDigest(DOWN_SEED, N), 'download: the client got the expected stream (SHA-256)')
    t.equal(s.rdigest, xorshiftDigest(UP_SEED, N), 'upload: the server got the expected stream (SHA-256)')
    t.equal(fw.stats.spliceFailures, 0, `no splice failures ${errors.join('; ')}`)
    t.ok(auC.rxGso + auS.rxGso > 0, `the kernels sent GSO super-segments (${auC.rxGso} + ${auS.rxGso})`)
    for (const [name, a] of [['client', auC], ['server', auS]] as const) {
      t.same(a.bad, [], `${name} TAP: every TCP frame we wrote checks out (${a.tcp} frames: ${a.full} full, ${a.partial} partial, ${a.gso} GSO, largest gso_size ${a.maxGso})`)
    }
    if (mode !== 'relay') {
      t.ok((await request) !== null, 'spliced in control mode')
      const f = fwd as FwdStage | null
      t.ok(f !== null, 'the FWD stage was found')
      t.ok(f !== null && f.ba.bytes > 0 && f.ab.bytes > 0, 'FWD carried both directions')
      t.same(f?.drops ?? {}, {}, 'FWD dropped nothing')
      t.ok(auC.gso > 0 && auS.gso > 0, `FWD forwarded super-segments to both kernels (${auS.gso} to the server, ${auC.gso} to the client)`)
    }
  })
}

t.test('VNET_HDR+TSO: iperf3 -t 2 through spliced IP/FWD', { skip: unavailable ?? (haveTool('iperf3') ? false : 'iperf3 is not installed') }, async t => {
  const net = await proxyKernelNet('pvo', { offloads: 'tso' })
  t.teardown(() => net.close())
  const auC = audit(net.devC, 1460)
  const auS = audit(net.devS, 1460)
  net.forwarder({ port: 5201, layout: '1-path', handler: plugGateway({ port: 5201, spliceOnOpen: { mode: 'ipfwd' } }) })
  const srv = supervise(net.serverNs.spawn('iperf3', ['-s', '-1', '-B', SERVER, '-p', '5201', '--forceflush']), 'iperf3 -s', 20_000)
  await srv.ready(/listening/i)
  const r = await net.clientNs.run('iperf3', ['-c', PROXY_A, '-B', CLIENT, '-p', '5201', '-t', '2', '-J'], { timeoutMs: 15_000 })
  const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number; bytes: number } } }
  t.ok(j.end.sum_received.bytes > 0, `iperf3 moved ${j.end.sum_received.bytes} bytes, ${(j.end.sum_received.bits_per_second / 1e9).toFixed(2)} Gbit/s`)
  t.same(auS.bad, [], `server TAP frames check out (${auS.tcp}, ${auS.gso} GSO)`)
  t.same(auC.bad, [], `client TAP frames check out (${auC.tcp})`)
  t.ok(auS.gso > 0, 'super-segments reached the server')
})
