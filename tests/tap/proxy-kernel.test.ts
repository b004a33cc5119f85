// Splicing with real Linux peers, in real time: a kernel client (namespace C) talks to a
// kernel server (namespace S) through our proxy host, whose two TAP devices face the two
// namespaces. The real-kernel twin of tests/e2e/proxy-splice.test.ts:
//   1. plug gateway, 1-path/2-path x relay/fwd/ipfwd: N MB down, spliced mid-download,
//      then N MB up through the splice; digests on both ends, splice counters, FWD carried
//      the rest, the spliced connection ends by FIN through FWD
//   2. curl through the plug gateway (spliced mid-transfer) and through SOCKS5 (spliced after
//      its reply; and a 100 MB download spliced mid-transfer to FWD, to IP/FWD and to the
//      shared IP/FWD path)
//   3. iperf3 through spliced connections (control and data), both directions
//   4. tshark on both legs: checksums, no ack_lost_segment, the server's sequence numbers
//      continuous across the splice, one constant seq offset between legs per direction;
//      and with 1% of the data segments lost at our host: timestamps and SACK blocks on
//      each leg consistent with that leg (mapped across the IP/FWD splice)
// PROXY_KERNEL_MB sets N (default 20; 100 works); PROXY_KERNEL_DUPLEX=1 runs test 1's two
// directions at once (exposes a known splice bug, see plugTransfer).
import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseIPv4 } from '../../core/bytes.js'
import { testSeed } from '../../core/random.js'
import { seqDiff, seqGt, seqLe, seqLt } from '../../core/seq.js'
import { haveTool, netAdminUnavailable, run, type Netns } from '../../drivers/tap/index.js'
import type { ProxyForwarder } from '../../paths/proxy/forwarder.js'
import { socks5Proxy } from '../../stages/proxy/handlers/socks5.js'
import type { FwdStage } from '../../stages/fwd/stage.js'
import type { ProxyHandler, ProxySession, ProxySessionApi, SessionCounters } from '../../stages/proxy/session.js'
import {
  BANNER_CLIENT, BANNER_SERVER, CLIENT, DOWN_SEED, DUPLEX_CLIENT, DUPLEX_SERVER, NODE_HTTP_SERVER, PROXY_A, PROXY_B, SERVER, UP_SEED,
  plugGateway, proxyKernelNet, spliceAfter, supervise, type DuplexReport, type ProxyKernelNet,
} from '../helpers/proxy-kernel.js'
import { xorshiftDigest, xorshiftFill } from '../helpers/tcp-kernel.js'

const MB = Number(process.env.PROXY_KERNEL_MB ?? 20)
/** Size of the SOCKS5 download spliced mid-transfer (PROXY_KERNEL_SOCKS_MB, default 100). */
const SOCKS_MB = Number(process.env.PROXY_KERNEL_SOCKS_MB ?? 100)
const N = Math.round(MB * 2 ** 20 / 4) * 4
/** Generous real-time bounds: at least 20 s, plus 1 s per MB. */
const LIMIT_MS = 20_000 + MB * 1000
/** Test 1 runs the download and the upload at once (see plugTransfer). */
const DUPLEX = process.env.PROXY_KERNEL_DUPLEX === '1'
/**
 * FWD state kept after both FINs were acked: a few times Linux's 200 ms minimum RTO, so a
 * late retransmission (a segment lost on a TAP queue) still finds it (default 2000).
 */
const LINGER_MS = 1000

const unavailable = netAdminUnavailable() ?? (!(MB > 0) ? `PROXY_KERNEL_MB=${process.env.PROXY_KERNEL_MB} is not a positive number` : null)
/** A test's skip reason when a tool it needs is not installed (false: run it). */
const need = (tool: string): string | false => (haveTool(tool) ? false : `${tool} is not installed`)


const mbps = (bytes: number, ms: number): string => `${(bytes / 2 ** 20 / (ms / 1000)).toFixed(1)} MiB/s`

/** Resolves when `fw` has no open session left (or rejects after `ms`). */
async function allClosed(fw: ProxyForwarder, ms: number): Promise<void> {
  const until = Date.now() + ms
  while (fw.stats.active > 0) {
    if (Date.now() > until) throw new Error(`sessions still open after ${ms} ms: ${fw.describe().join('; ')}`)
    await sleep(20)
  }
}

/** `rx/tx packets (dropped)` of the kernel side of a TAP link, for diagnostics. */
async function linkStats(ns: Netns, dev: string): Promise<string> {
  try {
    const [l] = JSON.parse(await ns.ip('-s', '-j', 'link', 'show', 'dev', dev)) as { stats64: { rx: { packets: number; dropped: number }; tx: { packets: number; dropped: number } } }[]
    const { rx, tx } = l!.stats64
    return `rx ${rx.packets} (${rx.dropped} dropped), tx ${tx.packets} (${tx.dropped} dropped)`
  } catch (err) {
    return `? (${(err as Error).message})`
  }
}

/** Starts a tshark capture on `dev` inside `ns`; resolves once it captures. */
async function capture(ns: Netns, dev: string, file: string): Promise<() => Promise<void>> {
  const cap = ns.spawn('tshark', ['-q', '-i', dev, '-B', '64', '-w', file, '-F', 'pcap'])
  const sup = supervise(cap, `tshark on ${dev}`, 120_000)
  await sup.ready(/Capturing on/)
  return async () => {
    cap.kill('SIGINT')
    await sup.done.catch(() => undefined)
  }
}

if (unavailable !== null) {
  t.plan(0, `proxy kernel tests skipped: ${unavailable}`)
} else {
  for (const layout of ['1-path', '2-path'] as const) {
    for (const mode of ['relay', 'fwd', 'ipfwd'] as const) plugTransfer(layout, mode)
  }
  curlTests()
  iperf3Test()
  tsharkTest()
  tsharkLossTest()
  serverSpeaksFirst()
}

/**
 * Test 1: N MB down, then N MB up, through a plug gateway; spliced (mode) after N/4 of the
 * download, or never (relay). The upload starts once the download ended, so it crosses the
 * spliced path entirely. PROXY_KERNEL_DUPLEX=1 runs both at once instead: the splice then
 * happens with bytes held for both peers, which hangs now and then because of a known bug
 * (the draining server-side TCB's segments carry a frozen ACK the server finally rejects as
 * too old; see the report), so it is not the default.
 */
function plugTransfer(layout: '1-path' | '2-path', mode: 'relay' | 'fwd' | 'ipfwd'): void {
  const what = mode === 'relay' ? 'relayed, never spliced' : `spliced to ${mode} mid-download`
  t.test(`plug gateway ${layout}: ${MB} MB down ${DUPLEX ? '+' : 'then'} ${MB} MB up between kernel peers, ${what}`, async t => {
    const net = await proxyKernelNet('pk')
    t.teardown(() => net.close())
    let session = null as ProxySessionApi | null
    let request = null as ReturnType<typeof spliceAfter> | null
    let splicedAt = 0
    let fwd = null as FwdStage | null
    let closedWhy = ''
    const errors: string[] = []
    const fw: ProxyForwarder = net.forwarder({
      port: 1080, layout, mode: 'fwd', lingerMs: LINGER_MS,
      handler: plugGateway({
        port: 5001,
        onServerOpen: s => {
          session = s
          if (mode !== 'relay') request = spliceAfter(s, N >> 2, { mode })
        },
        onSpliced: s => {
          splicedAt = Date.now()
          fwd = fw.sessions.get(s as ProxySession)?.fwd ?? null
        },
        onSpliceFailed: (_s, why) => errors.push(why),
        onClose: (_s, why) => (closedWhy = why),
      }),
    })
    const srv = supervise(net.serverNs.spawn(process.execPath, ['-e', DUPLEX_SERVER, SERVER, '5001', String(N), String(LIMIT_MS)]), 'kernel server', LIMIT_MS)
    await srv.ready(/listening/)
    const cli = supervise(net.clientNs.spawn(process.execPath, ['-e', DUPLEX_CLIENT, PROXY_A, '1080', String(N), String(LIMIT_MS), DUPLEX ? 'duplex' : 'sequential']), 'kernel client', LIMIT_MS)
    const [cOut, sOut] = await Promise.all([cli.done, srv.done])
    const c = JSON.parse(cOut) as DuplexReport
    const s = JSON.parse(sOut.trim().split('\n').pop()!) as DuplexReport
    t.equal(c.received, N, `the client received ${N} bytes`)
    t.equal(s.received, N, `the server received ${N} bytes`)
    t.equal(c.rdigest, s.sdigest, 'download: the client got what the server sent (SHA-256)')
    t.equal(s.rdigest, c.sdigest, 'upload: the server got what the client sent (SHA-256)')
    t.equal(c.rdigest, xorshiftDigest(DOWN_SEED, N), 'download digest is the expected stream')
    t.equal(s.rdigest, xorshiftDigest(UP_SEED, N), 'upload digest is the expected stream')
    await allClosed(fw, 5000)
    const st = fw.stats
    t.equal(st.accepted, 1, 'one session')
    t.equal(st.handlerErrors, 0, 'no handler errors')
    t.equal(st.spliceFailures, 0, `no splice failures ${errors.join('; ')}`)
    const sess = session
    t.ok(sess !== null, 'the server connection opened')
    const downMs = c.ms ?? 0
    const upMs = DUPLEX ? (s.endEpoch ?? 0) - (c.startEpoch ?? 0) : (s.endEpoch ?? 0) - (c.endEpoch ?? 0)
    const line = [`${layout} ${mode}: down ${mbps(N, downMs)}, up ${mbps(N, upMs)}${DUPLEX ? ' (at once)' : ''}`]
    if (mode === 'relay') {
      t.equal(st.splices, 0, 'never spliced')
      t.same(sess?.bytes, { fromClient: N, toClient: N, fromServer: N, toServer: N }, 'every byte crossed the proxy in control mode')
      t.equal(closedWhy, 'closed', 'both TCP connections closed')
    } else {
      const req = await request
      t.ok(req !== null, 'the splice was requested in control mode')
      t.equal(st.splices, 1, 'spliced once')
      t.ok(splicedAt > 0, 'onSpliced fired')
      const f = fwd
      t.ok(f !== null, 'the final FWD stage was found')
      if (req !== null && f !== null) {
        const ctl = sess!.bytes
        t.ok(req.bytes.fromServer >= N >> 2 && req.bytes.fromServer < N, `requested mid-download: ${req.bytes.fromServer} of ${N} bytes from the server relayed`)
        if (DUPLEX) t.ok(req.bytes.fromClient < N, `and ${req.bytes.fromClient} of ${N} from the client`)
        else t.equal(req.bytes.fromClient, 0, 'the upload had not started: all of it crosses the spliced path')
        t.ok(ctl.fromServer < N && ctl.fromClient < N, `control mode saw ${ctl.fromServer} + ${ctl.fromClient} bytes, not all`)
        // The rest crossed the FWD stage (the old TCBs drained what they held: < 2 send buffers).
        t.ok(f.ba.bytes >= N - ctl.fromServer - (1 << 20), `FWD forwarded ${f.ba.bytes} bytes server -> client`)
        t.ok(f.ab.bytes >= N - ctl.fromClient - (1 << 20), `FWD forwarded ${f.ab.bytes} bytes client -> server`)
        t.ok(f.ab.finSeen && f.ba.finSeen, 'both FINs went through FWD')
        t.same(f.drops, {}, `FWD dropped nothing (kernel side: client link ${await linkStats(net.clientNs, net.devC.name)}, server link ${await linkStats(net.serverNs, net.devS.name)})`)
        const before = req.at - (c.startEpoch ?? req.at)
        const after = (c.endEpoch ?? Date.now()) - splicedAt
        line.push(`splice requested after ${before} ms at ${(req.bytes.fromServer / 2 ** 20).toFixed(1)} MiB, took ${st.spliceMsTotal.toFixed(1)} ms`)
        line.push(`download relayed ${mbps(req.bytes.fromServer, before)} before, spliced ${mbps(N - ctl.fromServer, Math.max(1, after))} after`)
      }
      t.equal(closedWhy, 'fin', 'the spliced connection ended by FIN (FWD saw both FINs acked)')
    }
    t.equal(st.active, 0, 'no session left')
    t.comment(line.join('; '))
  })
}

/** Test 2: curl through the plug gateway (spliced mid-transfer) and through socks5Proxy. */
function curlTests(): void {
  const size = Math.min(N, 20 << 20)
  t.test('curl fetches a file from an HTTP server in the server namespace', { skip: need('curl') }, async t => {
    const net = await proxyKernelNet('pc')
    t.teardown(() => net.close())
    const dir = mkdtempSync(join(tmpdir(), 'proxy-kernel-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const body = new Uint8Array(size)
    xorshiftFill({ x: 0x1234567 }, body)
    writeFileSync(join(dir, 'file'), body)
    const want = createHash('sha256').update(body).digest('hex')
    const python = haveTool('python3')
    const http = python
      ? net.serverNs.spawn('python3', ['-u', '-m', 'http.server', '--bind', SERVER, '--directory', dir, '8000'])
      : net.serverNs.spawn(process.execPath, ['-e', NODE_HTTP_SERVER, SERVER, '8000', dir])
    const srv = supervise(http, python ? 'python3 http.server' : 'node HTTP server', 120_000)
    await srv.ready(python ? /Serving HTTP/ : /listening/)
    t.comment(`HTTP server: ${python ? 'python3 -m http.server' : 'node'}`)

    const curl = async (args: string[], out: string): Promise<{ sha: string; speed: number }> => {
      const { stdout } = await net.clientNs.run('curl', ['-sS', '--fail', '--max-time', String(LIMIT_MS / 1000), '-o', out, '-w', '%{speed_download}', ...args], { timeoutMs: LIMIT_MS + 5000 })
      return { sha: createHash('sha256').update(readFileSync(out)).digest('hex'), speed: Number(stdout) }
    }

    await t.test('plug gateway 10.77.1.1:1080 -> server:8000, spliced mid-transfer', async t => {
      let request = null as ReturnType<typeof spliceAfter> | null
      let closed = ''
      const fw = net.forwarder({
        port: 1080, layout: '1-path', lingerMs: LINGER_MS,
        handler: plugGateway({
          port: 8000,
          onServerOpen: s => {
            request = spliceAfter(s, size >> 2, { mode: 'fwd' })
          },
          onClose: (_s, why) => (closed = why),
        }),
      })
      const r = await curl([`http://${PROXY_A}:1080/file`], join(dir, 'got-plug'))
      t.equal(r.sha, want, `curl got the ${size}-byte file intact (SHA-256)`)
      const req = await request
      t.ok(req !== null && req.bytes.fromServer < size, `spliced mid-transfer, after ${req?.bytes.fromServer} bytes`)
      await allClosed(fw, 5000)
      t.equal(fw.stats.splices, 1, 'spliced once')
      t.equal(fw.stats.spliceFailures, 0, 'no splice failures')
      t.equal(closed, 'fin', 'the session ended by FIN')
      t.comment(`curl via plug gateway: ${(r.speed / 2 ** 20).toFixed(1)} MiB/s, splice took ${fw.stats.spliceMsTotal.toFixed(1)} ms`)
    })

    await t.test('curl --socks5 10.77.1.1:1081 through socks5Proxy (splices after its reply)', async t => {
      const log: string[] = []
      const socks: ProxyHandler = socks5Proxy({ rules: [{ action: 'allow', dst: '10.77.2.0/24' }], onLog: e => log.push(JSON.stringify(e)) })
      let closed = ''
      const fw = net.forwarder({ port: 1081, layout: '2-path', lingerMs: LINGER_MS, handler: { ...socks, name: socks.name, onClose: (s, why) => { closed = why; socks.onClose?.(s, why) } } })
      const r = await curl(['--socks5', `${PROXY_A}:1081`, `http://${SERVER}:8000/file`], join(dir, 'got-socks'))
      t.equal(r.sha, want, `curl got the ${size}-byte file through SOCKS5 intact (SHA-256)`)
      await allClosed(fw, 5000)
      t.equal(fw.stats.splices, 1, `spliced once ${log.join(' ')}`)
      t.equal(fw.stats.spliceFailures, 0, 'no splice failures')
      t.equal(closed, 'fin', 'the session ended by FIN')
      t.ok(log.some(l => l.includes('"type":"connected"')), 'socks5 logged the connection')
      t.comment(`curl via socks5: ${(r.speed / 2 ** 20).toFixed(1)} MiB/s, splice took ${fw.stats.spliceMsTotal.toFixed(1)} ms`)
    })

    // Issue 6's proof: a large download through SOCKS5, relayed, then spliced mid-transfer.
    const bigSize = Math.round(SOCKS_MB * 2 ** 20)
    const big = new Uint8Array(bigSize)
    xorshiftFill({ x: 0x7654321 }, big)
    writeFileSync(join(dir, 'big'), big)
    const wantBig = createHash('sha256').update(big).digest('hex')
    // ipfwd-shared: step 4 moves the connection into a row of the forwarder's shared IP/FWD path.
    for (const [mode, port] of [['fwd', 1082], ['ipfwd', 1083], ['ipfwd-shared', 1084]] as const) {
      await t.test(`curl --socks5 downloads ${SOCKS_MB} MB through socks5Proxy, spliced mid-transfer to ${mode}`, async t => {
        const socks: ProxyHandler = socks5Proxy({ rules: [{ action: 'allow', dst: '10.77.2.0/24' }], splice: false })
        let request = null as ReturnType<typeof spliceAfter> | null
        let closed = ''
        const fw = net.forwarder({
          port, layout: '1-path', lingerMs: LINGER_MS,
          handler: {
            ...socks, name: socks.name,
            onServerOpen: s => { socks.onServerOpen?.(s); request = spliceAfter(s, bigSize >> 2, { mode }) },
            onClose: (s, why) => { closed = why; socks.onClose?.(s, why) },
          },
        })
        const r = await curl(['--socks5', `${PROXY_A}:${port}`, `http://${SERVER}:8000/big`], join(dir, `got-big-${mode}`))
        t.equal(r.sha, wantBig, `curl got the ${bigSize}-byte file through SOCKS5 intact (SHA-256)`)
        const req = await request
        t.ok(req !== null && req.bytes.fromServer < bigSize, `spliced mid-transfer, after ${req?.bytes.fromServer} bytes`)
        await allClosed(fw, 5000)
        t.equal(fw.stats.splices, 1, 'spliced once')
        t.equal(fw.stats.spliceFailures, 0, 'no splice failures')
        t.equal(closed, 'fin', 'the session ended by FIN')
        if (mode === 'ipfwd-shared') {
          const sp = [...fw.sharedPaths.values()]
          t.equal(sp.length, 1, 'one shared IP/FWD path')
          t.equal(sp[0]!.stage.rows, 0, 'its row was freed')
          t.ok((sp[0]!.stage.stats().extra.bytesBA as number) > bigSize / 2, `the shared path carried the rest of the download (${String(sp[0]!.stage.stats().extra.bytesBA)} bytes)`)
        }
        t.comment(`curl --socks5, ${mode}: ${(r.speed / 2 ** 20).toFixed(1)} MiB/s, splice took ${fw.stats.spliceMsTotal.toFixed(1)} ms`)
      })
    }
  })
}

/** Test 3: iperf3 through a port-forwarding plug gateway that splices both of its connections at once. */
function iperf3Test(): void {
  t.test('iperf3 through spliced connections (control + data), both directions', { skip: need('iperf3') }, async t => {
    const net = await proxyKernelNet('pi')
    t.teardown(() => net.close())
    const fw = net.forwarder({ port: 5201, layout: '1-path', handler: plugGateway({ port: 5201, spliceOnOpen: { mode: 'fwd' } }) })
    for (const reverse of [false, true]) {
      const before = fw.stats.splices
      const srv = supervise(net.serverNs.spawn('iperf3', ['-s', '-1', '-B', SERVER, '-p', '5201', '--forceflush']), 'iperf3 -s', 30_000)
      await srv.ready(/listening/i)
      const { stdout } = await net.clientNs.run('iperf3', ['-c', PROXY_A, '-p', '5201', '-t', '3', '--json', ...(reverse ? ['-R'] : [])], { timeoutMs: 30_000 })
      await srv.done
      const j = JSON.parse(stdout) as { error?: string; end: { sum_sent: { bytes: number; bits_per_second: number; retransmits?: number }; sum_received: { bytes: number; bits_per_second: number } } }
      t.notOk(j.error, `iperf3 reported no error ${j.error ?? ''}`)
      const bps = j.end.sum_received.bits_per_second
      t.ok(bps > 0 && j.end.sum_received.bytes > 0, `iperf3 received ${j.end.sum_received.bytes} bytes`)
      t.equal(fw.stats.splices - before, 2, 'both iperf3 connections (control and data) were spliced')
      t.equal(fw.stats.spliceFailures, 0, 'no splice failures')
      t.comment(`iperf3 ${reverse ? '-R (server -> client)' : '(client -> server)'} through a spliced path: ${(bps / 1e9).toFixed(2)} Gbit/s, ${j.end.sum_sent.retransmits ?? '?'} retransmits`)
    }
    await allClosed(fw, 5000)
    t.equal(fw.stats.handlerErrors, 0, 'no handler errors')
    t.comment(`mean splice time ${(fw.stats.spliceMsTotal / Math.max(1, fw.stats.splices)).toFixed(2)} ms`)
  })
}

/** One TCP segment as tshark decodes it. */
interface Seg {
  time: number
  src: string
  sport: number
  seq: number
  len: number
  tcpCk: string
  ipCk: string
  ackLost: boolean
  lost: boolean
  key: string
}

/** The TCP packets of a capture as rows of `fields` (tshark -T fields, no reassembly), with extra tshark options. */
async function tsharkFields(file: string, fields: readonly string[], options: readonly string[]): Promise<string[][]> {
  const args = ['-r', file, '-n', '-o', 'tcp.desegment_tcp_streams:FALSE', ...options, '-Y', 'tcp', '-T', 'fields']
  for (const f of fields) args.push('-e', f)
  const { stdout } = await run('tshark', args, { timeoutMs: 90_000 })
  return stdout.split('\n').filter(Boolean).map(l => l.split('\t'))
}

async function segments(file: string): Promise<Seg[]> {
  const fields = ['frame.time_epoch', 'ip.src', 'tcp.srcport', 'tcp.seq_raw', 'tcp.len', 'tcp.checksum.status', 'ip.checksum.status', 'tcp.analysis.ack_lost_segment', 'tcp.analysis.lost_segment', 'tcp.payload']
  const rows = await tsharkFields(file, fields, ['-o', 'tcp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE', '-o', 'tcp.analyze_sequence_numbers:TRUE', '-E', 'occurrence=f'])
  return rows.map(([time, src, sport, seq, len, tcpCk, ipCk, ackLost, lost, payload]) => {
    return {
      time: Number(time) * 1000, src: src!, sport: Number(sport), seq: Number(seq), len: Number(len), tcpCk: tcpCk!, ipCk: ipCk!,
      ackLost: ackLost !== '', lost: lost !== '', key: `${len}:${(payload ?? '').slice(0, 48)}`,
    }
  })
}

/** What {@link capturedSplicedTransfer} leaves for the checks. */
interface CapturedTransfer {
  /** The pcap files of the client and server legs. */
  fileC: string
  fileS: string
  fw: ProxyForwarder
  /** When the splice was requested (null: it was not). */
  request: Promise<{ at: number; bytes: SessionCounters } | null>
  /** When it completed (Date.now(); 0: never). */
  splicedAt: number
}

/**
 * `down` bytes from the kernel server, then `up` bytes from the kernel client, through a
 * 1-path plug gateway spliced to `mode` after a quarter of the download, with tshark on
 * both legs; checks both digests, that every session closed, and one splice.
 */
async function capturedSplicedTransfer(t: Test, net: ProxyKernelNet, dir: string, down: number, up: number, mode: 'fwd' | 'ipfwd'): Promise<CapturedTransfer> {
  const fileC = join(dir, 'client-leg.pcap')
  const fileS = join(dir, 'server-leg.pcap')
  const stops = [await capture(net.clientNs, net.devC.name, fileC), await capture(net.serverNs, net.devS.name, fileS)]
  let request: CapturedTransfer['request'] = Promise.resolve(null)
  const r = { splicedAt: 0 }
  const fw = net.forwarder({
    port: 1080, layout: '1-path', lingerMs: LINGER_MS,
    handler: plugGateway({
      port: 5001,
      onServerOpen: s => {
        request = spliceAfter(s, down >> 2, { mode })
      },
      onSpliced: () => (r.splicedAt = Date.now()),
    }),
  })
  const srv = supervise(net.serverNs.spawn(process.execPath, ['-e', DUPLEX_SERVER, SERVER, '5001', String(down), '60000']), 'kernel server', 60_000)
  await srv.ready(/listening/)
  // The upload follows the download: it crosses the spliced path entirely (both at once
  // trips the known stale-ACK bug now and then, see plugTransfer).
  const cli = supervise(net.clientNs.spawn(process.execPath, ['-e', DUPLEX_CLIENT, PROXY_A, '1080', String(up), '60000', 'sequential']), 'kernel client', 60_000)
  const [cOut, sOut] = await Promise.all([cli.done, srv.done])
  const c = JSON.parse(cOut) as DuplexReport
  const s = JSON.parse(sOut.trim().split('\n').pop()!) as DuplexReport
  t.equal(c.rdigest, s.sdigest, 'download intact')
  t.equal(s.rdigest, c.sdigest, 'upload intact')
  await allClosed(fw, 10_000)
  await sleep(200)
  for (const stop of stops) await stop()
  t.equal(fw.stats.splices, 1, 'spliced once')
  return { fileC, fileS, fw, request, splicedAt: r.splicedAt }
}

/** Test 4: tshark on both legs during a spliced transfer. */
function tsharkTest(): void {
  t.test('tshark on both legs: checksums, no unseen ACKed segments, continuous server sequence across the splice, constant seq offsets', { skip: need('tshark') }, async t => {
    const net = await proxyKernelNet('pt')
    t.teardown(() => net.close())
    const dir = mkdtempSync(join(tmpdir(), 'proxy-kernel-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const down = 8 << 20
    const up = 4 << 20
    const { fileC, fileS, fw, request, splicedAt } = await capturedSplicedTransfer(t, net, dir, down, up, 'fwd')
    const req = await request
    t.ok(req !== null && splicedAt > 0, 'the splice was requested and completed')
    if (req === null) return
    t.comment(`splice requested at ${(req.bytes.fromServer / 2 ** 20).toFixed(2)} MiB down, done ${splicedAt - req.at} ms later (engine: ${fw.stats.spliceMsTotal.toFixed(1)} ms)`)

    const legC = await segments(fileC)
    const legS = await segments(fileS)
    for (const [name, leg, ours] of [['client', legC, PROXY_A], ['server', legS, PROXY_B]] as const) {
      const mine = leg.filter(x => x.src === ours)
      t.ok(mine.length > 1000, `${name} leg: ${leg.length} TCP segments captured, ${mine.length} from our proxy`)
      t.equal(mine.filter(x => x.tcpCk === '1').length, mine.length, `${name} leg: tshark verified every TCP checksum from our proxy as good`)
      t.same(leg.filter(x => x.tcpCk === '0').length, 0, `${name} leg: no bad TCP checksums at all`)
      t.same(leg.filter(x => x.ipCk === '0').length, 0, `${name} leg: no bad IP checksums`)
      t.same(leg.filter(x => x.ackLost).length, 0, `${name} leg: no tcp.analysis.ack_lost_segment`)
    }
    // While the old TCBs drain (Scout step 3), the preliminary FWD forwards each peer's new
    // segments at once, ahead of bytes the other side's old TCB still has to send: that
    // peer may see them out of order ("previous segment not captured"), then the gap
    // fills. Only in what our proxy sends, and only while splicing.
    for (const [name, leg, ours] of [['client', legC, PROXY_A], ['server', legS, PROXY_B]] as const) {
      const gaps = leg.filter(x => x.lost)
      const when = gaps.map(x => Math.round(x.time - req.at))
      t.ok(gaps.every(x => x.src === ours), `${name} leg: tcp.analysis.lost_segment only in segments from our proxy (${gaps.length})`)
      t.ok(when.every(g => g >= 0 && g <= splicedAt - req.at + 5), `${name} leg: sequence gaps only while splicing (at ${when.join(', ') || '-'} ms after the request; spliced after ${splicedAt - req.at} ms)`)
    }

    // Scout Fig. 10: the server's data segments over time, continuous across the splice.
    const sData = legS.filter(x => x.src === SERVER && x.len > 0)
    let max = (sData[0]?.seq ?? 0) >>> 0
    const first = max
    let holes = 0
    let regressions = 0
    for (const x of sData) {
      const d = (x.seq - max) | 0
      if (d > 0) holes++
      else if (d < 0) regressions++
      const e = (x.seq + x.len) >>> 0
      if (((e - max) | 0) > 0) max = e
    }
    t.equal(holes, 0, 'server leg: no segment starts beyond the highest byte sent so far (no sequence gap)')
    t.equal(((max - first) >>> 0), down, `server leg: the server's data covers exactly ${down} bytes`)
    const beforeSplice = sData.filter(x => x.time < req.at).length
    const afterSplice = sData.filter(x => x.time > splicedAt).length
    t.ok(beforeSplice > 100 && afterSplice > 100, `server data on both sides of the splice: ${beforeSplice} segments before, ${afterSplice} after`)
    t.comment(`server leg: ${sData.length} data segments, ${regressions} retransmitted/reordered`)

    // One constant sequence offset per direction between the legs, for the same bytes.
    const pairs = (from: Seg[], to: Seg[], fromSrc: string, toSrc: string, after: number) => {
      const at = new Map<string, number>()
      for (const x of to) if (x.src === toSrc && x.len > 0 && !at.has(x.key)) at.set(x.key, x.seq)
      const offsets = new Map<number, number>()
      let late = 0
      let latePaired = 0
      for (const x of from) {
        if (x.src !== fromSrc || x.len === 0) continue
        const y = at.get(x.key)
        if (x.time > after) late++
        if (y === undefined) continue
        if (x.time > after) latePaired++
        const off = (y - x.seq) >>> 0
        offsets.set(off, (offsets.get(off) ?? 0) + 1)
      }
      return { offsets, late, latePaired }
    }
    const dn = pairs(legS, legC, SERVER, PROXY_A, splicedAt)
    t.equal(dn.offsets.size, 1, `server -> client: one seq offset (client leg - server leg) for all ${[...dn.offsets.values()].reduce((a, b) => a + b, 0)} paired segments: ${[...dn.offsets.keys()].join(', ')}`)
    t.ok(dn.late > 100 && dn.latePaired >= dn.late * 0.99, `server -> client after the splice: ${dn.latePaired} of ${dn.late} server segments forwarded as they are`)
    const upPairs = pairs(legC, legS, CLIENT, PROXY_B, splicedAt)
    t.equal(upPairs.offsets.size, 1, `client -> server: one seq offset (server leg - client leg) for all ${[...upPairs.offsets.values()].reduce((a, b) => a + b, 0)} paired segments: ${[...upPairs.offsets.keys()].join(', ')}`)
    t.ok(upPairs.late > 100 && upPairs.latePaired >= upPairs.late * 0.99, `client -> server after the splice: ${upPairs.latePaired} of ${upPairs.late} client segments forwarded as they are`)
  })
}

/** One captured segment's timestamps and SACK blocks (absolute sequence numbers). */
interface TsSackSeg {
  time: number
  src: string
  syn: boolean
  seq: number
  /** seq + len (+1 for a FIN). */
  end: number
  ack: number | null
  tsval: number | null
  tsecr: number | null
  sack: [number, number][]
}

async function tsSackSegments(file: string): Promise<TsSackSeg[]> {
  const fields = ['frame.time_epoch', 'ip.src', 'tcp.flags.syn', 'tcp.flags.fin', 'tcp.flags.ack', 'tcp.seq_raw', 'tcp.len', 'tcp.ack_raw', 'tcp.options.timestamp.tsval', 'tcp.options.timestamp.tsecr', 'tcp.options.sack_le', 'tcp.options.sack_re']
  const rows = await tsharkFields(file, fields, ['-o', 'tcp.relative_sequence_numbers:FALSE', '-E', 'occurrence=a', '-E', 'aggregator=,'])
  const num = (v: string | undefined): number | null => (v === undefined || v === '' ? null : Number(v.split(',')[0]) >>> 0)
  return rows.map(([time, src, syn, fin, ack, seq, len, ackRaw, tsval, tsecr, le, re]) => {
    const les = le ? le.split(',').map(Number) : []
    const res = re ? re.split(',').map(Number) : []
    const s0 = Number(seq) >>> 0
    return {
      time: Number(time) * 1000, src: src!, syn: syn === '1' || syn === 'True', seq: s0,
      end: (s0 + Number(len) + (fin === '1' || fin === 'True' ? 1 : 0)) >>> 0,
      ack: ack === '1' || ack === 'True' ? num(ackRaw) : null, tsval: num(tsval), tsecr: num(tsecr),
      sack: les.map((x, i) => [x >>> 0, (res[i] ?? 0) >>> 0] as [number, number]),
    }
  })
}

/**
 * How long after the splice a peer's segments may still echo the old TCBs' own TSvals:
 * those sent before the final FWD took over. FWD maps them with the same offset, which
 * gives a past timestamp of the other peer, not one it sent (RTT samples stay about right).
 * The namespaces' RTT is well under a millisecond; 50 ms is generous.
 */
const SETTLE_MS = 50

/** What {@link checkLeg} found on one leg, for one sender. */
interface LegCheck {
  /**
   * Non-zero TSecrs; those after the splice that echo no TSval the other side had sent on
   * this leg; those at any time newer than its newest TSval (an echo from the future).
   */
  tsecrs: number
  tsecrUnseen: number
  tsecrFuture: number
  /** While splicing and {@link SETTLE_MS} after, TSecrs that echo no TSval of this leg (echoes of the old TCBs' own, mapped). */
  tsecrUnseenSplicing: number
  /** The first few unseen TSecrs: ms after the splice, value, newest TSval the other side had sent. */
  tsecrUnseenAt: string[]
  /** TSvals older than the newest this sender had sent, by more than Linux's PAWS slack (1). */
  tsvalRegressions: number
  /** SACK blocks, and those not within (ack, highest byte the other side had sent]. */
  blocks: number
  blocksAfter: number
  /** Of the blocks, D-SACKs (RFC 2883). */
  dsacks: number
  blocksBad: string[]
}

/** Checks the segments `from` sent on one leg against what `to` had sent there before. */
function checkLeg(leg: TsSackSeg[], from: string, to: string, after: number): LegCheck {
  const r: LegCheck = { tsecrs: 0, tsecrUnseen: 0, tsecrFuture: 0, tsecrUnseenSplicing: 0, tsecrUnseenAt: [], tsvalRegressions: 0, blocks: 0, blocksAfter: 0, dsacks: 0, blocksBad: [] }
  const seen = new Set<number>()
  let high: number | null = null
  let newest: number | null = null
  let newestSeen = 0
  for (const x of leg) {
    if (x.src === to) {
      if (x.tsval !== null) {
        seen.add(x.tsval)
        newestSeen = x.tsval
      }
      if (high === null || seqGt(x.end, high)) high = x.end
      continue
    }
    if (x.src !== from || x.syn) continue
    if (x.tsval !== null) {
      if (newest !== null && seqLt(x.tsval, (newest - 1) >>> 0)) r.tsvalRegressions++
      if (newest === null || seqGt(x.tsval, newest)) newest = x.tsval
    }
    if (x.ack !== null && x.tsecr !== null && x.tsecr !== 0) {
      r.tsecrs++
      if (seqGt(x.tsecr, newestSeen)) r.tsecrFuture++
      if (!seen.has(x.tsecr) && x.time <= after + SETTLE_MS) r.tsecrUnseenSplicing++
      else if (!seen.has(x.tsecr)) {
        r.tsecrUnseen++
        if (r.tsecrUnseenAt.length < 5) r.tsecrUnseenAt.push(`${Math.round(x.time - after)} ms: ${x.tsecr} (newest ${newestSeen}, len ${seqDiff(x.end, x.seq)})`)
      }
    }
    x.sack.forEach(([le, re], i) => {
      r.blocks++
      if (x.time > after) r.blocksAfter++
      // RFC 2018 §3: a block names received bytes above the cumulative ACK, which the other
      // side sent; RFC 2883 §4: the first block may instead report a duplicate (D-SACK),
      // below the ACK or inside the second block.
      const sent = x.ack !== null && high !== null && seqLt(le, re) && seqLe(re, high)
      const above = sent && seqGt(le, x.ack!)
      const next = x.sack[1]
      const dsack = sent && i === 0 && (seqLe(re, x.ack!) || (next !== undefined && seqLe(next[0], le) && seqLe(re, next[1])))
      if (dsack) r.dsacks++
      if (!above && !dsack && r.blocksBad.length < 5) r.blocksBad.push(`[${le}, ${re}) ack ${x.ack} high ${high} (${Math.round(x.time - after)} ms after the splice)`)
    })
  }
  return r
}

/** Test 4b: losses at our host make the kernel peers SACK through the splice. */
function tsharkLossTest(): void {
  t.test('tshark with 1% of the data segments lost at the proxy: timestamps and SACK blocks consistent with each leg across an IP/FWD splice', { skip: need('tshark') }, async t => {
    const seed = testSeed()
    t.comment(`seed=${seed}`)
    const net = await proxyKernelNet('pl', { rxLoss: { rate: 0.01, seed } })
    t.teardown(() => net.close())
    const dir = mkdtempSync(join(tmpdir(), 'proxy-kernel-loss-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const down = 4 << 20
    const up = 2 << 20
    const { fileC, fileS, splicedAt } = await capturedSplicedTransfer(t, net, dir, down, up, 'ipfwd')
    t.ok(splicedAt > 0, 'the splice completed')
    t.ok(net.rxLost[net.devC.name]! > 0 && net.rxLost[net.devS.name]! > 0, `segments lost at our host: ${JSON.stringify(net.rxLost)}`)
    for (const [name, file, peer, ours] of [['client', fileC, CLIENT, PROXY_A], ['server', fileS, SERVER, PROXY_B]] as const) {
      const leg = await tsSackSegments(file)
      for (const [who, from, to] of [['kernel', peer, ours], ['proxy', ours, peer]] as const) {
        const r = checkLeg(leg, from, to, splicedAt)
        t.comment(`${name} leg, from the ${who}: ${r.tsecrs} TSecrs (${r.tsecrUnseenSplicing} while splicing or settling echo no TSval of this leg), ${r.blocks} SACK blocks (${r.blocksAfter} after the splice, ${r.dsacks} D-SACKs)`)
        t.ok(r.tsecrs > 1000, `${name} leg, ${who}: timestamps on (${r.tsecrs} TSecrs)`)
        t.equal(r.tsecrFuture, 0, `${name} leg, ${who}: no TSecr newer than the other side's newest TSval`)
        t.equal(r.tsecrUnseen, 0, `${name} leg, ${who}: ${SETTLE_MS} ms after the splice on, every TSecr echoes a TSval the other side sent on this leg ${r.tsecrUnseenAt.join('; ')}`)
        t.equal(r.tsvalRegressions, 0, `${name} leg, ${who}: TSvals never go back (PAWS, RFC 7323 §5)`)
        t.same(r.blocksBad, [], `${name} leg, ${who}: every SACK block lies above the ACK and within what the other side sent on this leg`)
        t.ok(r.blocksAfter > 0, `${name} leg, ${who}: SACK blocks after the splice (${r.blocksAfter})`)
      }
    }
  })
}

/** A relay passes on a server's first words to a client that sends nothing. */
function serverSpeaksFirst(): void {
  t.test('relay: a server that speaks first (banner) reaches a silent client', async t => {
    const net = await proxyKernelNet('pb')
    t.teardown(() => net.close())
    const fw = net.forwarder({ port: 1080, handler: { name: 'plug', onClientOpen: s => s.connect(parseIPv4(SERVER), 5001) } })
    const srv = supervise(net.serverNs.spawn(process.execPath, ['-e', BANNER_SERVER, SERVER, '5001']), 'banner server', 5000)
    await srv.ready(/listening/)
    const cli = supervise(net.clientNs.spawn(process.execPath, ['-e', BANNER_CLIENT, PROXY_A, '1080']), 'banner client', 3000)
    const got = await cli.done.catch(e => `error: ${(e as Error).message}`)
    t.equal(got.trim(), 'banner 1000', 'the client read the 1000-byte banner within 3 s')
    const [s] = [...fw.sessions.keys()]
    if (s) t.comment(`session: ${JSON.stringify(s.bytes)}, state ${s.state}`)
  })
}

