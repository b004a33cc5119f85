/**
 * Our TCP host on a TAP device facing a kernel namespace (real time), plus the small
 * kernel-side programs the interop tests run with `node` inside the namespace.
 */
import { createHash } from 'node:crypto'
import { Scheduler } from '../../core/scheduler.js'
import { Netns, TapDevice } from '../../drivers/tap/index.js'
import { Host } from '../../paths/host.js'
import { TcpModule } from '../../stages/tcp/module.js'
import type { TcbConfig } from '../../stages/tcp/tcb.js'

/** Addresses of one kernel-interop setup. */
export interface KernelNet {
  ns: Netns
  dev: TapDevice
  sched: Scheduler
  host: Host
  tcp: TcpModule
  ours: string
  kernel: string
  close(): Promise<void>
}

let subnet = 220

/** Creates a namespace, a TAP device into it, our host with TCP on our side. */
export async function kernelNet(prefix: string, config: TcbConfig = {}, tapOpts: { mtu?: number } = {}): Promise<KernelNet> {
  const ns = await Netns.create(prefix)
  const dev = TapDevice.open({ name: ns.name, ...(tapOpts.mtu ? { mtu: tapOpts.mtu } : {}) })
  const sched = new Scheduler()
  const host = new Host(sched, { name: 'us' })
  const n = subnet++
  const ours = `10.${n}.0.2`
  const kernel = `10.${n}.0.1`
  host.addInterface(dev, { address: `${ours}/24` })
  const tcp = new TcpModule(host, { config: { minRtoMs: 200, ...config } })
  sched.start()
  await ns.adopt(dev.name, { addr: `${kernel}/24`, ...(tapOpts.mtu ? { mtu: tapOpts.mtu } : {}) })
  return {
    ns, dev, sched, host, tcp, ours, kernel,
    async close() {
      tcp.close()
      sched.stop()
      host.close()
      await dev.close()
      await ns.delete()
    },
  }
}

/** xorshift32 stream the kernel-side programs also generate: byte-identical data on both ends. */
export function xorshiftFill(state: { x: number }, out: Uint8Array): void {
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength)
  let x = state.x
  let i = 0
  for (; i + 4 <= out.length; i += 4) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    dv.setInt32(i, x | 0, true)
  }
  if (i < out.length) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    const tail = new Uint8Array(4)
    new DataView(tail.buffer).setInt32(0, x | 0, true)
    out.set(tail.subarray(0, out.length - i), i)
  }
  state.x = x
}

const digests = new Map<string, string>()
/** SHA-256 (hex) of the first `n` bytes of the xorshift stream from `seed`: what the kernel-side programs send (memoized). */
export function xorshiftDigest(seed: number, n: number): string {
  const key = `${seed}/${n}`
  let d = digests.get(key)
  if (d === undefined) {
    const h = createHash('sha256')
    const st = { x: seed | 0 }
    const chunk = new Uint8Array(1 << 16)
    for (let left = n; left > 0; left -= chunk.length) {
      xorshiftFill(st, chunk)
      h.update(left >= chunk.length ? chunk : chunk.subarray(0, left))
    }
    d = h.digest('hex')
    digests.set(key, d)
  }
  return d
}

/** Seed of the data flowing back (server to client) in the kernel tests. */
export const BACK_SEED = 0x2545f491

/** Kernel-side server: accepts one connection, hashes everything, then answers with one JSON line {bytes, digest} followed by `back` xorshift bytes (seed BACK_SEED). Args: addr port back. */
export const KERNEL_SINK = `
const net = require('node:net'), crypto = require('node:crypto');
const back = Number(process.argv[3] || 0);
// allowHalfOpen: our FIN ends the upload only; the answer still flows back.
const srv = net.createServer({ allowHalfOpen: true }, s => {
  const h = crypto.createHash('sha256'); let n = 0;
  s.on('data', d => { h.update(d); n += d.length });
  s.on('end', () => {
    s.write(JSON.stringify({ bytes: n, digest: h.digest('hex') }) + '\\n');
    let x = ${BACK_SEED}, sent = 0; const chunk = Buffer.alloc(1 << 16);
    const pump = () => {
      while (sent < back) {
        for (let i = 0; i < chunk.length; i += 4) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; chunk.writeInt32LE(x | 0, i) }
        const part = chunk.subarray(0, Math.min(chunk.length, back - sent)); sent += part.length;
        if (!s.write(part)) return s.once('drain', pump);
      }
      s.end(); srv.close();
    };
    pump();
  });
});
srv.listen(Number(process.argv[2]), process.argv[1], () => console.log('listening'));
setTimeout(() => process.exit(3), 120000).unref();`

/**
 * Kernel-side client: connects, sends N xorshift bytes (seed 0x9e3779b9), then reads the
 * server's JSON line and hashes everything after it. Prints {sent, digest, server, back: {bytes, digest}}.
 * Args: addr port total.
 */
export const KERNEL_SOURCE = `
const net = require('node:net'), crypto = require('node:crypto');
const total = Number(process.argv[3]); const chunk = Buffer.alloc(1 << 16);
let x = 0x9e3779b9;
const h = crypto.createHash('sha256'); let sent = 0;
const s = net.connect(Number(process.argv[2]), process.argv[1], () => {
  const pump = () => {
    while (sent < total) {
      for (let i = 0; i < chunk.length; i += 4) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; chunk.writeInt32LE(x | 0, i) }
      const part = chunk.subarray(0, Math.min(chunk.length, total - sent));
      h.update(part); sent += part.length;
      if (!s.write(part)) return s.once('drain', pump);
    }
    s.end();
  };
  pump();
});
let head = Buffer.alloc(0), server = null; const hb = crypto.createHash('sha256'); let backBytes = 0;
s.on('data', d => {
  if (server === null) {
    head = Buffer.concat([head, d]); const nl = head.indexOf(10);
    if (nl < 0) return;
    server = JSON.parse(head.subarray(0, nl).toString()); d = head.subarray(nl + 1);
  }
  hb.update(d); backBytes += d.length;
});
s.on('error', e => { console.log(JSON.stringify({ error: String(e) })); process.exit(2) });
s.on('end', () => console.log(JSON.stringify({ sent, digest: h.digest('hex'), server, back: { bytes: backBytes, digest: hb.digest('hex') } })));
setTimeout(() => process.exit(3), 120000).unref();`
