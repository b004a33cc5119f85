/**
 * Our proxy host between two Linux kernel namespaces, in real time, over TAP devices:
 * ```
 *   client ns 10.77.1.2 ── TAP ── 10.77.1.1 [our proxy host] 10.77.2.1 ── TAP ── 10.77.2.2 server ns
 * ```
 * Each TAP device is opened in the root namespace (our end: the fd our Host reads and
 * writes) and its kernel side is moved into its namespace, as in tcp-kernel.ts. Addresses
 * only live in the namespaces and in our user-space host, so several of these networks
 * can exist at once. Plus the kernel-side programs of the proxy tests (run with `node -e`).
 */
import { get16, parseIPv4 } from '../../core/bytes.js'
import type { Device, ReceiveHandler } from '../../core/device.js'
import type { Msg } from '../../core/msg.js'
import { Random } from '../../core/random.js'
import { Scheduler } from '../../core/scheduler.js'
import { Netns, TapDevice } from '../../drivers/tap/index.js'
import { Host } from '../../paths/host.js'
import { ProxyForwarder, type ProxyForwarderOptions } from '../../paths/proxy/forwarder.js'
import type { ProxyHandler, ProxySessionApi, SessionCounters, SpliceOptions } from '../../stages/proxy/session.js'
import { TcpModule } from '../../stages/tcp/module.js'
import type { TcbConfig } from '../../stages/tcp/tcb.js'
import type { ChildProcess } from 'node:child_process'

export const CLIENT = '10.77.1.2'
export const PROXY_A = '10.77.1.1'
export const PROXY_B = '10.77.2.1'
export const SERVER = '10.77.2.2'

/** Options of {@link proxyKernelNet}. */
export interface ProxyKernelNetOptions {
  /** TCB tunables of our host's TCP module [minRtoMs 200, mslMs 100]. */
  tcb?: TcbConfig
  /** MTU of both TAP links [1500]. */
  mtu?: number
  /** Open both TAPs with IFF_VNET_HDR (`vnet`) or IFF_VNET_HDR + TSO (`tso`) [none]. */
  offloads?: 'none' | 'vnet' | 'tso'
  /**
   * Our host drops this share of the TCP segments with payload it receives on either TAP,
   * seeded (this kernel has no netem): after a splice the kernel peers see the holes and
   * send SACK blocks through FWD [no loss].
   */
  rxLoss?: { rate: number; seed: number }
}

/** The two namespaces, our host and its two TAP devices. */
export interface ProxyKernelNet {
  /** Namespace of the client (10.77.1.2). */
  clientNs: Netns
  /** Namespace of the server (10.77.2.2). */
  serverNs: Netns
  /** TCP data segments dropped by {@link ProxyKernelNetOptions.rxLoss}, per device name. */
  rxLost: Record<string, number>
  /** Our TAP device towards the client (its kernel side is in clientNs, same name). */
  devC: TapDevice
  /** Our TAP device towards the server. */
  devS: TapDevice
  sched: Scheduler
  host: Host
  tcp: TcpModule
  /** Forwarders started with {@link ProxyKernelNet.forwarder} (closed by close()). */
  forwarders: ProxyForwarder[]
  /** Starts a forwarder on our host. */
  forwarder(opts: Omit<ProxyForwarderOptions, 'host' | 'tcp'>): ProxyForwarder
  /** Stops everything and deletes the namespaces (and with them the kernel sides of the TAPs); idempotent, never throws. */
  close(): Promise<void>
}

/** Runs the undo steps `undo` pushed, last first; a step that throws does not stop the rest. */
export async function unwind(undo: (() => unknown)[]): Promise<void> {
  for (const f of undo.reverse()) {
    try {
      await f()
    } catch {
      // keep tearing down the rest
    }
  }
}

/** An undo stack that {@link unwind}s when test `t` ends: push a step after each resource is made. */
export function undoOnTeardown(t: { teardown(fn: () => unknown): void }): (() => unknown)[] {
  const undo: (() => unknown)[] = []
  t.teardown(() => unwind(undo))
  return undo
}

/** A kernel-side program's report: the last line of its output as JSON, or `{ error }` naming `what` and the output. */
export function lastJson<T extends { error?: string }>(out: string, what: string): T {
  try {
    return JSON.parse(out.trim().split('\n').pop()!) as T
  } catch {
    return { error: `${what}: ${out}` } as T
  }
}

/**
 * `d` as our host sees it, minus a share `rate` of the received IPv4 TCP segments that carry
 * payload (counted in `lost[d.name]`); everything else passes untouched.
 */
function rxLossDevice(d: TapDevice, rate: number, rng: Random, lost: Record<string, number>): Device {
  lost[d.name] = 0
  const keep: Msg[] = []
  return {
    name: d.name, mtu: d.mtu, mac: d.mac, offloads: d.offloads,
    send: (batch, count) => d.send(batch, count),
    stats: () => d.stats(),
    close: () => d.close(),
    onReceive(handler: ReceiveHandler | null) {
      if (handler === null) return d.onReceive(null)
      d.onReceive((batch, count) => {
        keep.length = 0
        for (let i = 0; i < count; i++) {
          const m = batch[i]!
          const b = m.buf
          const e = m.off
          // Ethernet (no VLAN) + IPv4 + TCP with payload (the virtio-net header, if any, is kept apart in m.vnet).
          const ip = e + 14
          if (m.end - ip >= 40 && get16(b, e + 12) === 0x0800 && b[ip + 9] === 6) {
            const ihl = (b[ip]! & 0xf) << 2
            const total = get16(b, ip + 2)
            const thl = (b[ip + ihl + 12]! >>> 4) << 2
            if (total - ihl - thl > 0 && rng.chance(rate)) {
              lost[d.name]!++
              m.free()
              continue
            }
          }
          keep.push(m)
        }
        if (keep.length > 0) handler(keep, keep.length)
      })
    },
  }
}

/** Creates client ns + server ns + our proxy host with one TAP interface towards each. Cleans up after itself if any step fails. */
export async function proxyKernelNet(prefix: string, opts: ProxyKernelNetOptions = {}): Promise<ProxyKernelNet> {
  const undo: (() => unknown)[] = []
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    await unwind(undo)
  }
  try {
    const mtu = opts.mtu
    const clientNs = await Netns.create(`${prefix}c`)
    undo.push(() => clientNs.delete())
    const serverNs = await Netns.create(`${prefix}s`)
    undo.push(() => serverNs.delete())
    const off = opts.offloads ?? 'none'
    const tap = { ...(mtu ? { mtu } : {}), vnetHdr: off !== 'none', tso: off === 'tso' }
    const devC = TapDevice.open({ name: clientNs.name, ...tap })
    undo.push(() => devC.close())
    const devS = TapDevice.open({ name: serverNs.name, ...tap })
    undo.push(() => devS.close())
    const sched = new Scheduler()
    const host = new Host(sched, { name: 'proxy' })
    const rxLost: Record<string, number> = {}
    const lossy = (d: TapDevice): Device => (opts.rxLoss ? rxLossDevice(d, opts.rxLoss.rate, new Random(opts.rxLoss.seed), rxLost) : d)
    host.addInterface(lossy(devC), { address: `${PROXY_A}/24` })
    host.addInterface(lossy(devS), { address: `${PROXY_B}/24` })
    // A short MSL: the proxy's actively closed leg leaves TIME-WAIT (2 MSL) quickly, so a
    // relayed session ends within a test (60 s by default).
    const tcp = new TcpModule(host, { config: { minRtoMs: 200, mslMs: 100, ...opts.tcb } })
    const forwarders: ProxyForwarder[] = []
    undo.push(() => {
      for (const f of forwarders) f.close()
      tcp.close()
      sched.stop()
      host.close()
    })
    sched.start()
    await clientNs.adopt(devC.name, { addr: `${CLIENT}/24`, ...(mtu ? { mtu } : {}) })
    await serverNs.adopt(devS.name, { addr: `${SERVER}/24`, ...(mtu ? { mtu } : {}) })
    // Not needed by a proxy (each side only talks to the proxy's address on its link), but
    // lets the namespaces reach each other's subnet through our host should it route.
    await clientNs.ip('route', 'add', '10.77.2.0/24', 'via', PROXY_A)
    await serverNs.ip('route', 'add', '10.77.1.0/24', 'via', PROXY_B)
    return {
      clientNs, serverNs, devC, devS, sched, host, tcp, forwarders, rxLost,
      forwarder(o) {
        const fw = new ProxyForwarder({ host, tcp, ...o })
        forwarders.push(fw)
        return fw
      },
      close,
    }
  } catch (err) {
    await close()
    throw err
  }
}

/** Options of {@link plugGateway}. */
export interface PlugOptions {
  /** Port on the server to connect to. */
  port: number
  /** Server address [SERVER]. */
  server?: string
  /** Splice as soon as the server connection opens, with these options. */
  spliceOnOpen?: SpliceOptions
  /** Called with each session once its server connection is open (to splice later, count, ...). */
  onServerOpen?: (s: ProxySessionApi) => void
  /** Called when a session closes. */
  onClose?: (s: ProxySessionApi, why: string) => void
  /** Called when a splice completed. */
  onSpliced?: (s: ProxySessionApi) => void
  /** Called when a splice failed. */
  onSpliceFailed?: (s: ProxySessionApi, why: string) => void
}

/** A plug gateway: every client is connected to server:port; bytes are relayed until a splice. */
export function plugGateway(o: PlugOptions): ProxyHandler {
  const server = parseIPv4(o.server ?? SERVER)
  return {
    name: 'plug',
    onClientOpen: s => s.connect(server, o.port),
    onServerOpen: s => {
      if (o.spliceOnOpen !== undefined) s.splice(o.spliceOnOpen)
      o.onServerOpen?.(s)
    },
    onClose: (s, why) => o.onClose?.(s, why),
    onSpliced: s => o.onSpliced?.(s),
    onSpliceFailed: (s, why) => o.onSpliceFailed?.(s, why),
  }
}

/**
 * Splices `s` once `bytes[from]` reached `atBytes`, polling every millisecond in real time
 * (relayed bytes fire no handler callback). Resolves with the session counters and the time
 * (ms since epoch) at the request, or null if the session left control mode first.
 */
export function spliceAfter(s: ProxySessionApi, atBytes: number, opts: SpliceOptions, from: 'fromServer' | 'fromClient' = 'fromServer'): Promise<{ at: number; bytes: SessionCounters } | null> {
  return new Promise(resolve => {
    const iv = setInterval(() => {
      if (s.state !== 'control') {
        clearInterval(iv)
        resolve(null)
      } else if (s.bytes[from] >= atBytes) {
        clearInterval(iv)
        const bytes = { ...s.bytes }
        s.splice(opts)
        resolve({ at: Date.now(), bytes })
      }
    }, 1)
  })
}

/** A child process whose output is collected from the start. */
export interface Supervised {
  /** Resolves once stdout or stderr matched `re` (a server saying it listens); rejects if the child exits first or after `ms`. */
  ready(re?: RegExp, ms?: number): Promise<void>
  /** Resolves with stdout once the child exited 0; rejects on another exit or after the deadline (the child is killed). */
  done: Promise<string>
  /** Output so far. */
  readonly stdout: string
  readonly stderr: string
}

/** Collects a child's output from now on; `done` is bounded by `ms`. */
export function supervise(child: ChildProcess, what: string, ms: number): Supervised {
  let out = ''
  let err = ''
  const watchers: (() => void)[] = []
  const poke = (): void => { for (const w of [...watchers]) w() }
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); poke() })
  child.stderr?.on('data', (d: Buffer) => { err += d.toString(); poke() })
  const done = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${what} did not finish within ${ms} ms: ${out} ${err}`))
    }, ms)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      poke()
      if (code === 0) resolve(out)
      else reject(new Error(`${what} exited ${code ?? signal}: ${out} ${err}`))
    })
  })
  done.catch(() => undefined)
  return {
    done,
    get stdout() { return out },
    get stderr() { return err },
    ready(re = /\S/, readyMs = 10_000) {
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${what} not ready after ${readyMs} ms: ${out} ${err}`)), readyMs)
        const w = (): void => {
          if (re.test(out) || re.test(err)) {
            clearTimeout(timer)
            watchers.splice(watchers.indexOf(w), 1)
            resolve()
          } else if (child.exitCode !== null || child.signalCode !== null) {
            clearTimeout(timer)
            watchers.splice(watchers.indexOf(w), 1)
            reject(new Error(`${what} exited before it was ready (${child.exitCode ?? child.signalCode}): ${out} ${err}`))
          }
        }
        watchers.push(w)
        w()
      })
    },
  }
}

// The kernel-side duplex programs are shared with `pathsplice demo --tap`.
export { DOWN_SEED, UP_SEED, DUPLEX_SERVER, DUPLEX_CLIENT } from '../../bin/kernel-programs.js'
export type { DuplexReport } from '../../bin/kernel-programs.js'

/** A node HTTP/1.1 file server (when python3 is absent): `node -e SRC <addr> <port> <dir>`. */
export const NODE_HTTP_SERVER = `
const http = require('node:http'), fs = require('node:fs'), path = require('node:path');
const dir = process.argv[3];
http.createServer((req, res) => {
  const f = path.join(dir, path.basename(req.url));
  fs.stat(f, (err, st) => {
    if (err) { res.writeHead(404); return res.end() }
    res.writeHead(200, { 'content-length': st.size, connection: 'close' });
    fs.createReadStream(f).pipe(res);
  });
}).listen(Number(process.argv[2]), process.argv[1], () => console.log('listening'));`

/** Server that speaks first: `node -e SRC <addr> <port>`; sends a 1000-byte banner on accept, then reads until the client's FIN. */
export const BANNER_SERVER = `
const net = require('node:net');
const srv = net.createServer(s => { srv.close(); s.write(Buffer.alloc(1000, 66)); s.on('data', () => {}); s.on('end', () => s.end()); s.on('error', () => {}) });
srv.listen(Number(process.argv[2]), process.argv[1], () => console.log('listening'));
setTimeout(() => process.exit(3), 10000).unref();`

/** Silent client: `node -e SRC <addr> <port>`; reads 1000 bytes, prints `banner <n>`, closes. */
export const BANNER_CLIENT = `
const net = require('node:net'); let n = 0;
const s = net.connect(Number(process.argv[2]), process.argv[1]);
s.on('data', d => { n += d.length; if (n >= 1000) { console.log('banner ' + n); s.end(); process.exit(0) } });
s.on('error', e => { console.log(String(e)); process.exit(2) });`
