/**
 * End to end with real Linux peers (issue 7, item 6): kernel TCP client and server in two
 * network namespaces, and between them, in turn:
 *
 * ```
 *   ours (TAP):    nsC ── TAP ══ [pathsplice: IP router | proxy 2-path | 1-path | FWD | IP/FWD] ══ TAP ── nsS
 *   C bridge:      nsC ── TAP ══ [benchmarks/baseline/c-tap-bridge.c] ══ TAP ── nsS   (the user-space limit)
 *   kernel:        nsC ── veth ── nsR (ip_forward=1 | Node net+pipe relay) ── veth ── nsS
 * ```
 * For each: iperf3 (one stream, `--seconds`, default 5) Gbit/s and retransmits, a 1-byte
 * request/response latency over `--rtts` round trips (default 10,000; the first 100 are
 * warm-up), and CPU-seconds per GB of the forwarder (our process incl. its TAP threads,
 * the C bridge's or the relay's process; the kernel's forwarding runs in softirq: not
 * attributed). Our configurations and the C bridge run without and with TAP offloads
 * (VNET_HDR only, and VNET_HDR + TSO); the veth references keep the kernel's default offloads.
 * The proxies are plug gateways (ports 5201 and 7000 to the server's same ports); FWD and
 * IP/FWD splice each connection as soon as the server answers (IP/FWD replaces the stages
 * on the same path: there is no new-path variant).
 *
 * Run as root, after `npm run build`: `node dist/benchmarks/e2e-tap.js [--seconds 5] [--rtts 10000] [--only a,b]`.
 * Writes benchmarks/results/<date>/e2e-tap.{json,md}. Not part of `npm run bench`.
 * @module
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { cpus, release, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { parseIPv4 } from '../core/bytes.js'
import { Scheduler } from '../core/scheduler.js'
import { Netns, TapDevice, haveTool, netAdminUnavailable, run } from '../drivers/tap/index.js'
import { Host } from '../paths/host.js'
import { IpRouter } from '../paths/ip-router.js'
import { ProxyForwarder } from '../paths/proxy/forwarder.js'
import type { ProxyHandler } from '../stages/proxy/session.js'
import { TcpModule } from '../stages/tcp/module.js'

/** What runs between the namespaces. */
export type E2eKind = 'kernel-forward' | 'node-pipe' | 'c-bridge' | 'ip-router' | '2-path' | '1-path' | 'fwd' | 'ipfwd'

const KINDS: E2eKind[] = ['kernel-forward', 'node-pipe', 'c-bridge', 'ip-router', '2-path', '1-path', 'fwd', 'ipfwd']
const LABEL: Record<E2eKind, string> = {
  'kernel-forward': 'kernel IP forwarding (veth)', 'node-pipe': 'Node net + pipe relay (veth)', 'c-bridge': 'C TAP bridge',
  'ip-router': 'pathsplice IP router', '2-path': 'pathsplice proxy 2-path (relay)', '1-path': 'pathsplice proxy 1-path (relay)',
  fwd: 'pathsplice proxy spliced to FWD', ipfwd: 'pathsplice proxy spliced to IP/FWD',
}

/** TAP offloads: none, VNET_HDR only (checksum offload), VNET_HDR + TSO; the veth references keep the kernel's. */
export type Offloads = 'none' | 'vnet' | 'tso' | 'kernel default'

/** One measured row. */
export interface E2eResult {
  kind: E2eKind
  offloads: Offloads
  gbps: number | null
  retransmits: number | null
  rttUs: number | null
  rttP50Us: number | null
  cpuSecPerGB: number | null
  error: string | null
}

const here = dirname(fileURLToPath(import.meta.url))
const root = isDir(join(here, 'baseline')) ? join(here, '..') : join(here, '../..')
function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory()
  } catch {
    return false
  }
}
const USAGE = `Usage: node dist/benchmarks/e2e-tap.js [options]   (root; after npm run build)

End to end with real Linux peers in network namespaces: iperf3 Gbit/s, 1-byte round trips,
CPU-s/GB, for ${KINDS.join(', ')}.

Options:
  --seconds <n>   iperf3 duration per configuration (default 5)
  --rtts <n>      1-byte request/response round trips (default 10000; the first 100 warm up)
  --only <list>   comma-separated configurations from the list above
  -h, --help      this text
Writes benchmarks/results/<date>/e2e-tap.{json,md}.`

/** The command line, checked before anything starts (exit 2 with the reason on a bad flag). */
function parseCommandLine(): { seconds: number; rtts: number; only: E2eKind[] | undefined } {
  let values: { seconds?: string; rtts?: string; only?: string; help?: boolean }
  try {
    values = parseArgs({
      options: { seconds: { type: 'string' }, rtts: { type: 'string' }, only: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }).values
  } catch (e) {
    console.error(`e2e-tap: ${(e as Error).message}\n\n${USAGE}`)
    process.exit(2)
  }
  if (values.help === true) {
    console.log(USAGE)
    process.exit(0)
  }
  const count = (name: string, v: string | undefined, dflt: number, min: number): number => {
    if (v === undefined) return dflt
    const n = Number(v)
    if (!Number.isInteger(n) || n < min) {
      console.error(`e2e-tap: --${name} must be an integer >= ${min}, got '${v}'`)
      process.exit(2)
    }
    return n
  }
  let only: E2eKind[] | undefined
  if (values.only !== undefined) {
    only = values.only.split(',').map(k => k.trim()) as E2eKind[]
    const bad = only.filter(k => !KINDS.includes(k))
    if (bad.length > 0) {
      console.error(`e2e-tap: unknown configuration(s) ${bad.join(', ')} in --only; choose from ${KINDS.join(', ')}`)
      process.exit(2)
    }
  }
  return { seconds: count('seconds', values.seconds, 5, 1), rtts: count('rtts', values.rtts, 10_000, 200), only }
}
const { seconds, rtts, only } = parseCommandLine()

const C_IP = '10.78.1.1'
const A_IP = '10.78.1.254'
const B_IP = '10.78.2.254'
const S_IP = '10.78.2.1'

const ECHO_SERVER = `const net=require('net');net.createServer(c=>{c.setNoDelay(true);c.on('data',d=>c.write(d));c.on('error',()=>{})}).listen(7000,process.argv[1],()=>console.log('ready'))`
const RR_CLIENT = `const net=require('net');const [ip,n]=[process.argv[1],+process.argv[2]];const s=net.connect(7000,ip,()=>{s.setNoDelay(true);const t=[];let t0=process.hrtime.bigint();s.write('x');s.on('data',d=>{for(let i=0;i<d.length;i++){const now=process.hrtime.bigint();t.push(Number(now-t0)/1e3);if(t.length===n){const w=t.slice(100).sort((a,b)=>a-b);console.log(JSON.stringify({mean:w.reduce((a,b)=>a+b,0)/w.length,p50:w[w.length>>1]}));s.destroy();return}t0=now;s.write('x')}})});s.on('error',e=>{console.error(e.message);process.exit(1)})`
const PIPE_RELAY = `const net=require('net');const [la,ra]=[process.argv[1],process.argv[2]];let up=0;for(const p of [5201,7000])net.createServer(c=>{c.setNoDelay(true);const u=net.connect(p,ra);u.setNoDelay(true);c.pipe(u).pipe(c);c.on('error',()=>u.destroy());u.on('error',()=>c.destroy())}).listen(p,la,()=>{if(++up===2)console.log('ready')})`

function cpuOfPid(pid: number): number {
  // proc(5): fields 14 and 15 are utime and stime in clock ticks (100 Hz).
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(f[11]) + Number(f[12])) / 100
}

function waitLine(child: ChildProcess, re: RegExp, ms: number, what: string): Promise<void> {
  return new Promise((res, rej) => {
    let out = ''
    const timer = setTimeout(() => rej(new Error(`${what} not ready after ${ms} ms: ${out}`)), ms)
    const on = (d: Buffer): void => {
      out += d.toString()
      if (re.test(out)) {
        clearTimeout(timer)
        res()
      }
    }
    child.stdout?.on('data', on)
    child.stderr?.on('data', on)
    child.once('exit', code => {
      clearTimeout(timer)
      rej(new Error(`${what} exited (${code}) before it was ready: ${out}`))
    })
  })
}

/** A forwarder set up between nsC and nsS, with its CPU meter. */
interface Setup {
  /** Where the client connects (the server, or the proxy). */
  target: string
  cpu(): number
  close(): Promise<void>
}

async function setUp(kind: E2eKind, offloads: Offloads, nsC: Netns, nsS: Netns, undo: (() => unknown)[]): Promise<Setup> {
  if (kind === 'kernel-forward' || kind === 'node-pipe') {
    const nsR = await Netns.create('per')
    undo.push(() => nsR.delete())
    const [c, rc, s, rs] = [`${nsC.name}v`, `${nsR.name}c`, `${nsS.name}v`, `${nsR.name}s`]
    await run('ip', ['link', 'add', c, 'type', 'veth', 'peer', 'name', rc])
    await run('ip', ['link', 'add', s, 'type', 'veth', 'peer', 'name', rs])
    await run('ip', ['link', 'set', rc, 'netns', nsR.name])
    await run('ip', ['link', 'set', rs, 'netns', nsR.name])
    await nsC.adopt(c, { addr: `${C_IP}/24` })
    await nsS.adopt(s, { addr: `${S_IP}/24` })
    await nsR.ip('addr', 'add', `${A_IP}/24`, 'dev', rc)
    await nsR.ip('addr', 'add', `${B_IP}/24`, 'dev', rs)
    await nsR.ip('link', 'set', rc, 'up')
    await nsR.ip('link', 'set', rs, 'up')
    await nsC.ip('route', 'add', 'default', 'via', A_IP)
    await nsS.ip('route', 'add', 'default', 'via', B_IP)
    if (kind === 'kernel-forward') {
      await nsR.run('sysctl', ['-qw', 'net.ipv4.ip_forward=1'])
      return { target: S_IP, cpu: () => 0, close: async () => {} }
    }
    const relay = nsR.spawn(process.execPath, ['-e', PIPE_RELAY, A_IP, S_IP])
    await waitLine(relay, /ready/, 10_000, 'pipe relay')
    return { target: A_IP, cpu: () => cpuOfPid(relay.pid!), close: async () => { relay.kill('SIGKILL') } }
  }
  if (kind === 'c-bridge') {
    const bin = join(root, 'benchmarks/results/tmp/c-tap-bridge')
    mkdirSync(dirname(bin), { recursive: true })
    execFileSync('gcc', ['-O2', '-o', bin, join(root, 'benchmarks/baseline/c-tap-bridge.c')])
    const child = spawn(bin, offloads === 'tso' ? [nsC.name, nsS.name, 'vnet'] : [nsC.name, nsS.name], { stdio: ['ignore', 'pipe', 'inherit'] })
    await waitLine(child, /ready/, 5000, 'C bridge')
    undo.push(() => child.kill('SIGKILL'))
    // One L2 segment: both namespaces in one subnet.
    await nsC.adopt(nsC.name, { addr: `${C_IP}/16` })
    await nsS.adopt(nsS.name, { addr: `${S_IP}/16` })
    return { target: S_IP, cpu: () => cpuOfPid(child.pid!), close: async () => { child.kill('SIGTERM') } }
  }
  const tap = { tso: offloads === 'tso', vnetHdr: offloads === 'vnet' || offloads === 'tso' }
  const devC = TapDevice.open({ name: nsC.name, ...tap })
  const devS = TapDevice.open({ name: nsS.name, ...tap })
  undo.push(() => devC.close(), () => devS.close())
  const sched = new Scheduler()
  let closeFwd: () => void
  if (kind === 'ip-router') {
    const r = new IpRouter(sched, { sides: [{ device: devC, address: `${A_IP}/24` }, { device: devS, address: `${B_IP}/24` }] })
    closeFwd = () => r.close()
  } else {
    const host = new Host(sched, { name: 'proxy' })
    host.addInterface(devC, { address: `${A_IP}/24` })
    host.addInterface(devS, { address: `${B_IP}/24` })
    const tcp = new TcpModule(host, { config: { minRtoMs: 200, mslMs: 100 } })
    const spliceMode = kind === 'fwd' || kind === 'ipfwd' ? kind : null
    const fws = [5201, 7000].map(port => {
      const handler: ProxyHandler = {
        name: 'plug',
        onClientOpen: s => s.connect(parseIPv4(S_IP), port),
        onServerOpen: s => { if (spliceMode !== null) s.splice({ mode: spliceMode }) },
      }
      return new ProxyForwarder({ host, tcp, port, handler, layout: kind === '2-path' ? '2-path' : '1-path' })
    })
    closeFwd = () => {
      for (const f of fws) f.close()
      tcp.close()
      host.close()
    }
  }
  sched.start()
  undo.push(() => {
    sched.stop()
    closeFwd()
  })
  await nsC.adopt(devC.name, { addr: `${C_IP}/24` })
  await nsS.adopt(devS.name, { addr: `${S_IP}/24` })
  await nsC.ip('route', 'add', 'default', 'via', A_IP)
  await nsS.ip('route', 'add', 'default', 'via', B_IP)
  const cpu = (): number => {
    const u = process.cpuUsage()
    return (u.user + u.system) / 1e6
  }
  return { target: kind === 'ip-router' ? S_IP : A_IP, cpu, close: async () => {} }
}

async function measure(kind: E2eKind, offloads: Offloads): Promise<E2eResult> {
  const undo: (() => unknown)[] = []
  const out: E2eResult = { kind, offloads, gbps: null, retransmits: null, rttUs: null, rttP50Us: null, cpuSecPerGB: null, error: null }
  try {
    const nsC = await Netns.create('pec')
    undo.push(() => nsC.delete())
    const nsS = await Netns.create('pes')
    undo.push(() => nsS.delete())
    const setup = await setUp(kind, offloads, nsC, nsS, undo)
    undo.push(() => setup.close())
    const srv = nsS.spawn('iperf3', ['-s', '-1', '-B', S_IP, '-p', '5201', '--forceflush'])
    undo.push(() => srv.kill('SIGKILL'))
    await waitLine(srv, /listening/i, 10_000, 'iperf3 -s')
    const cpu0 = setup.cpu()
    const ip = await nsC.run('iperf3', ['-c', setup.target, '-p', '5201', '-t', String(seconds), '-J'], { timeoutMs: (seconds + 20) * 1000 })
    const cpu1 = setup.cpu()
    const j = JSON.parse(ip.stdout) as { error?: string; end: { sum_received: { bits_per_second: number; bytes: number }; sum_sent: { retransmits?: number } } }
    if (j.error) throw new Error(`iperf3: ${j.error}`)
    out.gbps = j.end.sum_received.bits_per_second / 1e9
    out.retransmits = j.end.sum_sent.retransmits ?? null
    if (kind !== 'kernel-forward') out.cpuSecPerGB = (cpu1 - cpu0) / (j.end.sum_received.bytes / 1e9)
    const echo = nsS.spawn(process.execPath, ['-e', ECHO_SERVER, S_IP])
    undo.push(() => echo.kill('SIGKILL'))
    await waitLine(echo, /ready/, 10_000, 'echo server')
    const rr = await nsC.run(process.execPath, ['-e', RR_CLIENT, setup.target, String(rtts)], { timeoutMs: 60_000 })
    const r = JSON.parse(rr.stdout) as { mean: number; p50: number }
    out.rttUs = r.mean
    out.rttP50Us = r.p50
  } catch (err) {
    out.error = (err as Error).message.split('\n')[0]!.replace(/^ip netns exec \S+ /, '').replace(/: Command failed.*/, '').slice(0, 160)
  } finally {
    for (const f of undo.reverse()) {
      try {
        await f()
      } catch {
        // keep cleaning up
      }
    }
  }
  return out
}

function markdown(rows: E2eResult[], machine: string): string {
  const f = (v: number | null, d = 2): string => (v === null ? '-' : v.toFixed(d))
  const find = (k: E2eKind, off: Offloads): E2eResult | undefined => rows.find(r => r.kind === k && r.offloads === off)
  const lines = [
    '# End to end with Linux peers over TAP',
    '',
    `iperf3 one stream, ${seconds} s; 1-byte request/response, ${rtts.toLocaleString('en-US')} round trips (first 100 left out). ${machine}`,
    '',
    '| forwarder | offloads | Gbit/s | retransmits | µs per round trip (mean / p50) | forwarder CPU-s per GB | error |',
    '|---|---|---:|---:|---:|---:|---|',
    ...rows.map(r => `| ${LABEL[r.kind]} | ${{ none: 'none', vnet: 'VNET_HDR', tso: 'VNET_HDR+TSO', 'kernel default': 'kernel default' }[r.offloads]} | ${f(r.gbps)} | ${r.retransmits ?? '-'} | ${f(r.rttUs, 1)} / ${f(r.rttP50Us, 1)} | ${f(r.cpuSecPerGB)} | ${r.error ?? ''} |`),
    '',
  ]
  const ip = find('ipfwd', 'tso')
  const pipe = find('node-pipe', 'kernel default')
  const c = find('c-bridge', 'tso')
  if (ip?.gbps != null && pipe?.gbps != null) lines.push(`- ${ip.gbps >= pipe.gbps ? 'MET' : 'MISSED'}: spliced IP/FWD with offloads at least as fast as the Node pipe relay (${ip.gbps.toFixed(2)} vs ${pipe.gbps.toFixed(2)} Gbit/s, ${((ip.gbps / pipe.gbps) * 100).toFixed(0)}%)`)
  else lines.push('- NOT MEASURED: IP/FWD with offloads vs the Node pipe relay (a run failed: see the error column)')
  if (ip?.gbps != null && c?.gbps != null) lines.push(`- ${ip.gbps >= 0.5 * c.gbps ? 'MET' : 'MISSED'}: spliced IP/FWD with offloads at least 50% of the C TAP bridge (${((ip.gbps / c.gbps) * 100).toFixed(0)}%: ${ip.gbps.toFixed(2)} vs ${c.gbps.toFixed(2)} Gbit/s)`)
  else lines.push('- NOT MEASURED: IP/FWD with offloads vs the C bridge (a run failed: see the error column)')
  const ipNone = find('ipfwd', 'none')
  const cNone = find('c-bridge', 'none')
  if (ipNone?.gbps != null && pipe?.gbps != null && cNone?.gbps != null) {
    lines.push(`- Without offloads (informational): IP/FWD ${ipNone.gbps.toFixed(2)} Gbit/s = ${((ipNone.gbps / pipe.gbps) * 100).toFixed(0)}% of the pipe relay, ${((ipNone.gbps / cNone.gbps) * 100).toFixed(0)}% of the C bridge without offloads.`)
  }
  lines.push(
    '- Two cores are shared by iperf3 client and server, the forwarder and whatever else runs on the machine; compare ratios within this run.',
    '- The kernel references use veth pairs with the kernel\'s default offloads (no ethtool here to turn them off); the relay runs in a third namespace.',
    '',
  )
  return lines.join('\n')
}

async function main(): Promise<void> {
  const why = netAdminUnavailable() ?? (haveTool('iperf3') ? null : 'iperf3 is not installed') ?? (haveTool('gcc') ? null : 'gcc is not installed')
  if (why !== null) {
    console.error(`e2e-tap benchmark skipped: ${why}`)
    return
  }
  const rows: E2eResult[] = []
  const kinds = only ?? KINDS
  for (const kind of kinds) {
    const modes: Offloads[] = kind === 'kernel-forward' || kind === 'node-pipe' ? ['kernel default'] : kind === 'c-bridge' ? ['none', 'tso'] : ['none', 'vnet', 'tso']
    for (const offloads of modes) {
      const r = await measure(kind, offloads)
      console.log(`${LABEL[kind].padEnd(36)} offloads=${r.offloads.padEnd(14)} ${r.gbps?.toFixed(2) ?? '-'} Gbit/s, ${r.rttUs?.toFixed(1) ?? '-'} µs/RTT, ${r.cpuSecPerGB?.toFixed(2) ?? '-'} CPU-s/GB${r.error ? `  ERROR ${r.error}` : ''}`)
      rows.push(r)
    }
  }
  const machine = `Machine: ${cpus().length} x ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Node ${process.version}, ${new Date().toISOString()}.`
  const dir = join(root, 'benchmarks/results', new Date().toISOString().slice(0, 10))
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'e2e-tap.json'), JSON.stringify({ machine, seconds, rtts, rows }, null, 2) + '\n')
  const md = markdown(rows, machine)
  writeFileSync(join(dir, 'e2e-tap.md'), md)
  console.log('\n' + md)
}

await main()
