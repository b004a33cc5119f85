// Our TCP against the Linux kernel's over a TAP device into a namespace this test creates:
// our server with a kernel client and our client with a kernel server; on each connection
// SIZE bytes go each way (client to server, then server to client) and both ends compare
// SHA-256 digests. The kernel's TCP features (timestamps, SACK, window scaling) are on.
import t from 'tap'
import { createHash } from 'node:crypto'
import { netAdminUnavailable, haveTool } from '../../drivers/tap/index.js'
import { connect, TcpServer, type TcpSocket } from '../../stages/tcp/socket.js'
import { BACK_SEED, kernelNet, KERNEL_SINK, KERNEL_SOURCE, xorshiftFill } from '../helpers/tcp-kernel.js'

const unavailable = netAdminUnavailable() ?? (haveTool('node') ? null : 'node is not on PATH inside the namespace')
/** Bytes each way per connection (the issue asks for 100 MB; TCP_KERNEL_BYTES overrides). */
const SIZE = Number(process.env.TCP_KERNEL_BYTES ?? 100_000_000)

/** Writes `total` xorshift bytes (seed `x`) to `s` with backpressure; resolves with their digest. */
function sendStream(s: TcpSocket, total: number, x: number): Promise<string> {
  const h = createHash('sha256')
  const state = { x }
  let sent = 0
  const chunk = new Uint8Array(1 << 16)
  return new Promise((resolve, reject) => {
    s.once('error', reject)
    const pump = (): void => {
      while (sent < total) {
        const part = chunk.subarray(0, Math.min(chunk.length, total - sent))
        xorshiftFill(state, part)
        h.update(part)
        sent += part.length
        if (!s.write(Buffer.from(part))) {
          s.once('drain', pump)
          return
        }
      }
      s.end()
      resolve(h.digest('hex'))
    }
    pump()
  })
}

function expectedDigest(total: number, x: number): string {
  const h = createHash('sha256')
  const state = { x }
  const chunk = new Uint8Array(1 << 16)
  for (let done = 0; done < total; done += chunk.length) {
    const part = chunk.subarray(0, Math.min(chunk.length, total - done))
    xorshiftFill(state, part)
    h.update(part)
  }
  return h.digest('hex')
}

function mbps(bytes: number, ms: number): string {
  return ((bytes * 8) / ms / 1000).toFixed(0)
}

if (unavailable !== null) {
  t.plan(0, `kernel TCP tests skipped: ${unavailable}`)
} else {
  t.test(`our server, kernel client: ${SIZE} bytes each way, digests on both ends`, async t => {
    const net = await kernelNet('tk')
    t.teardown(() => net.close())
    const server = new TcpServer(net.tcp).listen(5001)
    let serverSock: TcpSocket | null = null
    let upMs = 0
    const t0 = performance.now()
    server.on('connection', (s: TcpSocket) => {
      serverSock = s
      const h = createHash('sha256')
      let n = 0
      s.on('data', (d: Buffer) => {
        h.update(d)
        n += d.length
      })
      s.on('end', () => {
        upMs = performance.now() - t0
        s.write(JSON.stringify({ bytes: n, digest: h.digest('hex') }) + '\n')
        void sendStream(s, SIZE, BACK_SEED)
      })
    })
    const { stdout } = await net.ns.run('node', ['-e', KERNEL_SOURCE, net.ours, '5001', String(SIZE)], { timeoutMs: 120_000 })
    const ms = performance.now() - t0
    const r = JSON.parse(stdout.trim()) as { sent: number; digest: string; server: { bytes: number; digest: string }; back: { bytes: number; digest: string } }
    t.equal(r.sent, SIZE)
    t.equal(r.server.bytes, SIZE, 'kernel -> us: every byte')
    t.equal(r.server.digest, r.digest, 'kernel -> us: digests equal')
    t.equal(r.back.bytes, SIZE, 'us -> kernel: every byte')
    t.equal(r.back.digest, expectedDigest(SIZE, BACK_SEED), 'us -> kernel: digests equal')
    const tcb = (serverSock as TcpSocket | null)?.tcb
    t.ok(tcb?.sackOk && tcb?.tsOk && tcb?.sndWscale > 0, 'SACK, timestamps and window scaling negotiated with the kernel')
    t.comment(`kernel -> us ${mbps(SIZE, upMs)} Mbit/s, then us -> kernel ${mbps(SIZE, ms - upMs)} Mbit/s (incl. node start-up in the namespace)`)
  })

  t.test(`our client, kernel server: ${SIZE} bytes each way, digests on both ends`, async t => {
    const net = await kernelNet('tk')
    t.teardown(() => net.close())
    const sink = net.ns.spawn('node', ['-e', KERNEL_SINK, net.kernel, '5002', String(SIZE)])
    await new Promise<void>((resolve, reject) => {
      sink.stdout!.once('data', () => resolve())
      sink.once('exit', code => reject(new Error(`kernel server exited ${code}`)))
    })
    const t0 = performance.now()
    const s = await connect(net.tcp, net.kernel, 5002)
    const h = createHash('sha256')
    let head = Buffer.alloc(0)
    let reply: { bytes: number; digest: string } | null = null
    let back = 0
    let upMs = 0
    const done = new Promise<void>((resolve, reject) => {
      s.on('error', reject)
      s.on('data', (d: Buffer) => {
        if (reply === null) {
          upMs = performance.now() - t0
          head = Buffer.concat([head, d])
          const nl = head.indexOf(10)
          if (nl < 0) return
          reply = JSON.parse(head.subarray(0, nl).toString()) as { bytes: number; digest: string }
          d = head.subarray(nl + 1)
        }
        h.update(d)
        back += d.length
      })
      s.on('end', () => resolve())
    })
    const sentDigest = await sendStream(s, SIZE, 0x9e3779b9)
    await done
    const ms = performance.now() - t0
    const r = reply as { bytes: number; digest: string } | null
    t.equal(r?.bytes, SIZE, 'us -> kernel: every byte')
    t.equal(r?.digest, sentDigest, 'us -> kernel: digests equal')
    t.equal(back, SIZE, 'kernel -> us: every byte')
    t.equal(h.digest('hex'), expectedDigest(SIZE, BACK_SEED), 'kernel -> us: digests equal')
    t.ok(s.tcb.sackOk && s.tcb.tsOk && s.tcb.sndWscale > 0, 'SACK, timestamps and window scaling negotiated')
    t.comment(`us -> kernel ${mbps(SIZE, upMs)} Mbit/s, then kernel -> us ${mbps(SIZE, ms - upMs)} Mbit/s`)
  })
}

if (unavailable === null) {
  for (const config of [{ windowScaling: false }, { sack: false }, { timestamps: false }, { mss: 1000 }, { windowScaling: false, sack: false, timestamps: false }]) {
    t.test(`our server with ${JSON.stringify(config)}, kernel client: 10 MB each way`, async t => {
      const size = 10_000_000
      const net = await kernelNet('tk', config)
      t.teardown(() => net.close())
      const server = new TcpServer(net.tcp).listen(5003)
      let sock: TcpSocket | null = null
      server.on('connection', (s: TcpSocket) => {
        sock = s
        const h = createHash('sha256')
        let n = 0
        s.on('data', (d: Buffer) => {
          h.update(d)
          n += d.length
        })
        s.on('end', () => {
          s.write(JSON.stringify({ bytes: n, digest: h.digest('hex') }) + '\n')
          void sendStream(s, size, BACK_SEED)
        })
      })
      const { stdout } = await net.ns.run('node', ['-e', KERNEL_SOURCE, net.ours, '5003', String(size)], { timeoutMs: 60_000 })
      const r = JSON.parse(stdout.trim()) as { digest: string; server: { bytes: number; digest: string }; back: { bytes: number; digest: string } }
      t.equal(r.server.digest, r.digest, 'kernel -> us intact')
      t.equal(r.back.digest, expectedDigest(size, BACK_SEED), 'us -> kernel intact')
      const tcb = (sock as TcpSocket | null)!.tcb
      t.equal(tcb.sndWscale > 0, config.windowScaling !== false, 'window scaling as configured')
      t.equal(tcb.sackOk, config.sack !== false, 'SACK as configured')
      t.equal(tcb.tsOk, config.timestamps !== false, 'timestamps as configured')
      if (config.mss !== undefined) t.ok(tcb.sndMss <= config.mss, `segments clamped to ${tcb.sndMss}`)
    })
  }
}
