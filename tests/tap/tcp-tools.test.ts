// Our TCP against real tools in a namespace: tshark on the kernel side checks our
// checksums, lost-segment analysis and the negotiated options; curl fetches from our
// HTTP server; iperf3 runs a test against our iperf3 server.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { netAdminUnavailable, haveTool, run } from '../../drivers/tap/index.js'
import { TcpServer, type TcpSocket } from '../../stages/tcp/socket.js'
import { httpBody, httpServer, iperf3Server } from '../helpers/tcp-apps.js'
import { kernelNet, KERNEL_SOURCE } from '../helpers/tcp-kernel.js'

const missing = ['node', 'tshark', 'curl', 'iperf3'].filter(x => !haveTool(x))
const unavailable = netAdminUnavailable() ?? (missing.length > 0 ? `missing tools: ${missing.join(', ')}` : null)

if (unavailable !== null) {
  t.plan(0, `kernel tool tests skipped: ${unavailable}`)
} else {
  t.test('tshark on the kernel side: good checksums, no lost segments, all options negotiated', async t => {
    const net = await kernelNet('tt')
    t.teardown(() => net.close())
    const dir = mkdtempSync(join(tmpdir(), 'tcp-tshark-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, 'k.pcap')
    const cap = net.ns.spawn('tshark', ['-i', net.dev.name, '-w', file, '-F', 'pcap', '-q'])
    await new Promise<void>((resolve, reject) => {
      let err = ''
      cap.stderr!.on('data', (d: Buffer) => {
        err += d.toString()
        if (/Capturing on/.test(err)) resolve()
      })
      cap.once('exit', c => reject(new Error(`tshark exited ${c}: ${err}`)))
    })
    // Traffic: the kernel sends 4 MB to our server, curl fetches 1 MB from our HTTP server.
    const server = new TcpServer(net.tcp).listen(5001)
    server.on('connection', (s: TcpSocket) => {
      let n = 0
      s.on('data', (d: Buffer) => (n += d.length))
      s.on('end', () => s.end(JSON.stringify({ bytes: n, digest: '' }) + '\n'))
    })
    httpServer(net.tcp, 8080)
    const src = await net.ns.run('node', ['-e', KERNEL_SOURCE, net.ours, '5001', String(4 << 20)], { timeoutMs: 60_000 })
    t.equal(JSON.parse(src.stdout).server.bytes, 4 << 20)
    const got = await net.ns.run('sh', ['-c', `curl -s --max-time 20 http://${net.ours}:8080/${1 << 20} | sha256sum`], { timeoutMs: 30_000 })
    t.equal(got.stdout.split(' ')[0], httpBody(1 << 20).digest, 'curl got the right bytes')
    await new Promise(r => setTimeout(r, 300))
    const exited = new Promise(r => cap.once('exit', r))
    cap.kill('SIGINT')
    await exited
    const tshark = async (filter: string, fields: string[]): Promise<string[]> => {
      const args = ['-r', file, '-o', 'tcp.check_checksum:TRUE', '-o', 'tcp.analyze_sequence_numbers:TRUE', '-Y', filter, '-T', 'fields']
      for (const f of fields) args.push('-e', f)
      const { stdout } = await run('tshark', args, { timeoutMs: 60_000 })
      return stdout.split('\n').filter(Boolean)
    }
    const ours = await tshark(`ip.src == ${net.ours} && tcp`, ['frame.number'])
    t.ok(ours.length > 1000, `captured ${ours.length} of our segments`)
    t.same(await tshark(`ip.src == ${net.ours} && tcp.checksum.status == 0`, ['frame.number']), [], 'no bad TCP checksums from us')
    t.same(await tshark(`ip.src == ${net.ours} && ip.checksum.status == 0`, ['frame.number']), [], 'no bad IP checksums from us')
    t.same(await tshark('tcp.analysis.ack_lost_segment', ['frame.number']), [], 'no ack_lost_segment')
    t.same(await tshark('tcp.analysis.lost_segment', ['frame.number']), [], 'no lost_segment')
    const syns = await tshark('tcp.flags.syn == 1', ['ip.src', 'tcp.flags.ack', 'tcp.options.mss_val', 'tcp.options.sack_perm', 'tcp.options.timestamp.tsval', 'tcp.options.wscale.shift'])
    t.ok(syns.length >= 4, 'SYN and SYN-ACK of both connections captured')
    for (const line of syns) {
      const [src, , mss, sackPerm, tsval, ws] = line.split('\t')
      t.ok(Number(mss) > 0 && sackPerm !== '' && tsval !== '' && ws !== '', `${src} offered MSS ${mss}, SACK, TS, WS ${ws}`)
    }
  })

  t.test('iperf3 client (kernel) against our iperf3 server', async t => {
    const net = await kernelNet('ti')
    t.teardown(() => net.close())
    const { done } = iperf3Server(net.tcp, 5201)
    const { stdout } = await net.ns.run('iperf3', ['-c', net.ours, '-p', '5201', '-t', '2', '-J'], { timeoutMs: 30_000 })
    const res = await done
    const j = JSON.parse(stdout) as { end: { sum_sent: { bytes: number; bits_per_second: number } } }
    t.ok(res.bytes > 1_000_000, `our server received ${res.bytes} bytes`)
    t.ok(j.end.sum_sent.bytes > 0 && Math.abs(j.end.sum_sent.bytes - res.bytes) <= 1 << 20, `iperf3 sent ${j.end.sum_sent.bytes} bytes (we counted ${res.bytes})`)
    t.comment(`iperf3 -> our TCP: ${(j.end.sum_sent.bits_per_second / 1e6).toFixed(0)} Mbit/s`)
  })
}
