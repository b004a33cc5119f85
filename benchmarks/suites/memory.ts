/**
 * Memory per connection at the proxy (Scout: 256 KB of buffers per unspliced connection
 * vs under 36 bytes of FWD state): N idle connections through a 1-path plug gateway,
 * unspliced, then all spliced to FWD (and, separately, IP/FWD, and the shared IP/FWD path
 * of mode `ipfwd-shared`, where each connection is one row of a typed-array table).
 *
 * Heap = V8 `used_heap_size` plus ArrayBuffer backing stores (`process.memoryUsage()
 * .arrayBuffers`: TCB rings live there, outside the V8 heap), each after a full GC (`gc`
 * exposed at runtime through `v8.setFlagsFromString`). The client and server hosts live
 * in the same heap, so the same N connections are also opened through a plain IP router
 * (no per-connection state) and that baseline is subtracted: what is left is the proxy's.
 * Peers use small TCB buffers (4 KB) so 100k of them fit; the proxy keeps its defaults.
 * @module
 */
import v8 from 'node:v8'
import { runInNewContext } from 'node:vm'
import type { ProxySessionApi, SpliceMode } from '../../stages/proxy/session.js'
import { ProxyForwarder } from '../../paths/proxy/forwarder.js'
import { PROXY_A_IP, PROXY_PORT, SERVER_IP, SERVER_PORT, plugHandler, proxyNet } from '../lib/proxy-rig.js'
import type { ResultTable, Suite, SuiteContext } from '../lib/suite.js'

v8.setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

function heapBytes(): { heap: number; ab: number } {
  for (let i = 0; i < 3; i++) gc()
  return { heap: v8.getHeapStatistics().used_heap_size, ab: process.memoryUsage().arrayBuffers }
}

const PEER = { sndBuf: 4096, rcvBuf: 4096 }

/**
 * Connections per port pair: one client address reaches one proxy port from at most the
 * 28k ports of its ephemeral range (and the proxy one server port likewise), so N above
 * this is spread over several proxy ports (a forwarder each, with its own shared path)
 * and server ports, as a real proxy would need several addresses or ports.
 */
const PER_PORT = 25_000

/** Bytes per connection for one N. */
export interface MemoryRow {
  connections: number
  /** Client + server only (through a router), heap + array buffers per connection. */
  baseline: number
  /** Proxy share per unspliced connection (null where not run: too big). */
  unspliced: number | null
  /** Of which ArrayBuffers (TCB rings). */
  unsplicedArrayBuffers: number | null
  /** Proxy share per connection spliced to FWD. */
  fwd: number
  /** Of which ArrayBuffers (with the peers' 8 KB of rings per connection: subtract them). */
  fwdArrayBuffers: number
  /** Proxy share per connection spliced to IP/FWD. */
  ipfwd: number
  /** Proxy share per connection spliced to the shared IP/FWD path (one table row each). */
  shared: number
  /** Of which ArrayBuffers (the table, with the peers' rings: subtract them). */
  sharedArrayBuffers: number
}

/** Opens `n` idle connections; returns the heap growth (V8 heap + ArrayBuffers) while they are open. */
function open(n: number, via: 'router' | 'proxy', splice: SpliceMode | null): { bytes: number; ab: number } {
  // The sessions the handler saw, until they are spliced: the benchmark keeps none of them
  // past that, so what the heap holds per connection is what the forwarder keeps.
  const sessions: (ProxySessionApi | null)[] = []
  const before = heapBytes()
  const net = proxyNet({ forwarder: via === 'router' ? 'router' : '1-path', handler: plugHandler(s => sessions.push(s)), peerTcb: PEER, proxyTcb: {} })
  const groups = Math.ceil(n / PER_PORT)
  const forwarders = via === 'proxy' ? [net.proxy!] : []
  for (let k = 0; k < groups; k++) {
    net.tcpS.listen(SERVER_PORT + k, c => {
      c.stage.app = { onData() {} }
    }, PEER)
    if (k > 0 && via === 'proxy') {
      forwarders.push(new ProxyForwarder({
        host: net.proxyHost!, tcp: net.tcpP!, port: PROXY_PORT + k, layout: '1-path', tcb: {},
        handler: { name: 'plug', onClientOpen: s => s.connect(SERVER_IP, SERVER_PORT + k), onServerOpen: s => sessions.push(s) },
      }))
    }
  }
  const target = via === 'router' ? SERVER_IP : PROXY_A_IP
  const port = via === 'router' ? SERVER_PORT : PROXY_PORT
  let spliced = 0
  for (let i = 0; i < n; i++) {
    net.tcpC.connect(target, port + (i % groups), { config: PEER }).stage.app = { onData() {} }
    if (i % 100 === 99 || i === n - 1) {
      net.sched.runFor(20)
      // Splice as they come so 100k unspliced pairs never coexist.
      if (splice !== null) {
        for (; spliced < sessions.length; spliced++) {
          sessions[spliced]!.splice({ mode: splice })
          sessions[spliced] = null
        }
      }
    }
  }
  net.sched.runFor(3000) // handshakes, splices and delayed ACKs done
  if (via === 'proxy' && sessions.length !== n) throw new Error(`memory: ${sessions.length} of ${n} sessions opened`)
  const splicedNow = forwarders.reduce((a, f) => a + f.stats.spliced, 0)
  if (splice !== null && splicedNow !== n) throw new Error(`memory: ${splicedNow} of ${n} spliced (${JSON.stringify(forwarders.map(f => f.stats))})`)
  const after = heapBytes()
  // `net` is used after the measurement, so it is alive during it.
  if (net.sched.now() < 0) throw new Error('unreachable')
  return { bytes: after.heap - before.heap + after.ab - before.ab, ab: after.ab - before.ab }
}

/** Above this, FWD and IP/FWD per connection are not run (about 19 KB each plus the TCBs while they splice: 100k would not fit beside the peers). */
let maxPerConnection = Infinity
function skipPerConnection(n: number): boolean {
  return n > maxPerConnection
}

/** Measures at each N; unspliced only up to `maxUnspliced`, FWD and IP/FWD per connection only up to `maxPerConn`. */
export function measureMemory(ns: number[], maxUnspliced: number, progress: (f: number, what: string) => void = () => {}, maxPerConn = Infinity): MemoryRow[] {
  maxPerConnection = maxPerConn
  const rows: MemoryRow[] = []
  for (let i = 0; i < ns.length; i++) {
    const n = ns[i]!
    progress(i / ns.length, `${n} connections`)
    const per = (x: { bytes: number }): number => x.bytes / n
    // One network alive at a time (each is dropped before the next is opened).
    const base = per(open(n, 'router', null))
    let un: number | null = null
    let unAb: number | null = null
    if (n <= maxUnspliced) {
      const u = open(n, 'proxy', null)
      un = per(u) - base
      unAb = u.ab / n
    }
    const f = skipPerConnection(n) ? null : open(n, 'proxy', 'fwd')
    const fwd = f === null ? null : per(f) - base
    const fwdAb = f === null ? null : f.ab / n
    const ipfwd = skipPerConnection(n) ? null : per(open(n, 'proxy', 'ipfwd')) - base
    const sh = open(n, 'proxy', 'ipfwd-shared')
    rows.push({
      connections: n, baseline: base, unspliced: un, unsplicedArrayBuffers: unAb, fwd: fwd ?? NaN, fwdArrayBuffers: fwdAb ?? NaN, ipfwd: ipfwd ?? NaN,
      shared: per(sh) - base, sharedArrayBuffers: sh.ab / n,
    })
  }
  progress(1, 'done')
  return rows
}

/** Tables for the rows. */
export function memoryTables(rows: MemoryRow[]): ResultTable[] {
  const last = rows[rows.length - 1]
  const notes = [
    'Proxy share = (heap + ArrayBuffers growth with the proxy - the same through a router) / N, after full GCs. Unspliced: two TCBs (16 KB rings each, growing to 256 KB under load), the PROXY stage, the session, flow entries, one path. Spliced: FWD state, the path (ETH, IP, FWD, IP, ETH stages), the session, two flow entries.',
    'Scout: 256 KB of buffers per unspliced connection, under 36 bytes of FWD state.',
    'ArrayBuffers columns: backing-store growth per connection in that run, the peers\' 16 KB of rings included. Once spliced, the drained TCBs\' rings are freed (Tcb.releaseBuffers); what remains per connection is JavaScript objects: the path and its five stages, the FWD state, the session, the two old TCP stages (kept for their snapshots) and the flow entries. Scout\'s 36 bytes need spliced connections to share one path and keep their FWD state in a table: the shared IP/FWD column.',
  ]
  notes.push('Shared IP/FWD (mode ipfwd-shared): each connection is one row of the forwarder\'s table (40 int32 words + 2 float64 byte counters = 176 B, plus its share of the 4-tuple index: 4 int32 slots per row, 16 B; both grow by doubling, so the share per connection depends on where N falls between powers of two). The session, its wiring, path, stages, TCBs and flow entries are released at the move (the plug handler has no onClose, so nobody keeps the session).')
  const perConn = rows.filter(r => Number.isFinite(r.fwd))
  const lastPer = perConn[perConn.length - 1]
  if (lastPer !== undefined) {
    const rings = lastPer.fwdArrayBuffers - 4 * 4096
    notes.push(`Spliced per connection, without the retained rings: about ${(lastPer.fwd - rings).toFixed(0)} B per connection of JS objects (path, five stages, FWD state, session, wiring, flow entries, snapshots) at ${lastPer.connections.toLocaleString('en-US')}.`)
  }
  if (last !== undefined) {
    const per = Number.isFinite(last.fwd) ? `FWD ${last.fwd.toFixed(0)} B, IP/FWD ${last.ipfwd.toFixed(0)} B, ` : ''
    notes.push(`${last.shared < 300 ? 'MET' : 'MISSED'}: spliced state under 300 bytes per connection at ${last.connections.toLocaleString('en-US')} connections (${per}shared IP/FWD ${last.shared.toFixed(0)} B; ${(last.shared / 300).toFixed(2)}x the target)`)
  }
  return [{
    title: 'Proxy memory per connection, bytes (idle connections)',
    columns: ['connections', 'unspliced (TCP pair + proxy)', 'ArrayBuffers (unspliced run)', 'spliced to FWD', 'ArrayBuffers (FWD run)', 'spliced to IP/FWD', 'shared IP/FWD path', 'ArrayBuffers (shared run)', 'peers only (subtracted)'],
    rows: rows.map(r => {
      const nr = (x: number): number | string => (Number.isFinite(x) ? x : 'not run')
      return [r.connections, r.unspliced ?? 'not run', r.unsplicedArrayBuffers ?? '-', nr(r.fwd), nr(r.fwdArrayBuffers), nr(r.ipfwd), r.shared, r.sharedArrayBuffers, r.baseline]
    }),
    notes,
  }]
}

/** The suite. */
export const memorySuite: Suite = {
  id: 'memory',
  title: 'Memory per connection: unspliced TCP pairs vs spliced FWD state vs the shared IP/FWD table',
  async run(ctx: SuiteContext) {
    // At 100k only the shared path runs with the proxy: per-connection FWD keeps about 19 KB
    // per connection, and unspliced pairs their rings (tens of KB each); their figures are
    // flat in N and come from the 10k/20k rows.
    const ns = ctx.smoke ? [100] : ctx.quick ? [1000, 2000] : [1000, 10_000, 20_000, 100_000]
    const rows = measureMemory(ns, ctx.quick || ctx.smoke ? ns[ns.length - 1]! : 20_000, ctx.progress, ctx.quick || ctx.smoke ? Infinity : 20_000)
    return { tables: memoryTables(rows), data: rows }
  },
}
