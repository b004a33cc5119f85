/**
 * The `pathsplice run` configuration: its types and a validator that checks everything
 * before anything starts. Every error names `file:line:column`, what was expected there
 * and, where it helps, the fix (a "did you mean", an example value).
 *
 * ```jsonc
 * {
 *   "log": "info",
 *   "devices": [
 *     { "name": "lan", "type": "tap", "address": "10.0.0.1/24",
 *       "peer": { "netns": "lan-ns", "address": "10.0.0.2/24" } },   // kernel side in a namespace run creates
 *     { "name": "wan", "type": "tap", "address": "10.0.1.1/24" }
 *   ],
 *   "routes": [ { "cidr": "0.0.0.0/0", "via": "10.0.1.254" } ],
 *   "paths": [ "router: lan -> ETH -> IP(route) -> ETH -> wan" ],
 *   "proxies": [
 *     { "name": "socks", "type": "socks5", "port": 1080, "splice": "after-control",
 *       "rules": [ { "action": "allow", "dst": "10.0.1.0/24" } ] }
 *   ]
 * }
 * ```
 * The full reference is in README.md (Configuration).
 * @module
 */
import { parseIPv4 } from '../../core/bytes.js'
import { PathSpecSyntaxError, PathspliceError } from '../../core/errors.js'
import { parseSpec, type SpecChain } from '../../core/spec.js'
import { parseCidr } from '../../stages/ip/routes.js'
import { httpProxy, nullProxy, socks5Proxy, transparentProxy } from '../../stages/proxy/handlers/index.js'
import type { TcpInterceptRule } from '../../stages/tcp/module.js'
import type { HttpServer } from '../../stages/proxy/handlers/http.js'
import { compileRules, type Socks5Rule } from '../../stages/proxy/handlers/socks5.js'
import type { ProxyHandler } from '../../stages/proxy/session.js'
import { ConfigFileError, parseJsonc, type JNode, type Pos } from './jsonc.js'

/** Log levels, most verbose first. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'silent'] as const
/** A log level. */
export type LogLevel = (typeof LOG_LEVELS)[number]

/** A route (see `Host.addRoute`). */
export interface RouteConfig {
  /** Destination prefix. */
  cidr: string
  /** Gateway. */
  via?: string
  /** Device name. */
  dev?: string
  /** Preference (lower wins). */
  metric?: number
}

/** A namespace `run` creates for a TAP device's kernel side, and removes on exit. */
export interface PeerConfig {
  /** Namespace name. */
  netns: string
  /** The kernel side's address, e.g. `10.0.0.2/24`. */
  address: string
  /** Routes inside the namespace. */
  routes: { cidr: string; via: string }[]
}

/** One device and the forwarder's address on it. */
export interface DeviceConfig {
  /** Name used by routes and path specs. */
  name: string
  /** `tap` (a Linux TAP device, root), `memory` (an in-process wire; the far end is the embedder's) or `pcap` (live capture and injection on an interface). */
  type: 'tap' | 'memory' | 'pcap'
  /** The forwarder's address with prefix length. */
  address: string
  /** MTU [1500]. */
  mtu: number
  /** tap: the Linux interface name [the device name]; pcap: the interface to capture on. */
  ifname: string
  /** pcap: a BPF filter. */
  filter?: string
  /** tap: move the kernel side into a namespace created for it. */
  peer?: PeerConfig
  /** memory: one-way delay of the wire, ms [0]. */
  delayMs: number
}

/** An IP router path between two devices (`dev -> ETH -> IP(route) -> ETH -> dev`). */
export interface RouterPathConfig {
  /** Path name. */
  name: string
  /** Device at end 0. */
  from: string
  /** Device at end 1. */
  to: string
  /** The spec text. */
  spec: string
}

/**
 * When a proxy splices: `never` (relay through both TCPs), `after-control` (as soon as
 * the control phase is over: the plug gateway's connect, the SOCKS reply), `proxy` (the
 * proxy decides: HTTP splices each response body and unsplices for the next request), or
 * after the server's first N bytes (plug gateways).
 */
export type SplicePolicy = 'never' | 'after-control' | 'proxy' | { afterBytes: number }

/** A proxy listening on a port of the forwarder, or intercepting connections routed through it (`transparent`). */
export interface ProxyConfig {
  /** Name in logs and stats. */
  name: string
  /** Which built-in proxy. */
  type: 'null' | 'socks5' | 'http' | 'transparent'
  /** Port to accept clients on (null: a transparent proxy with no port of its own). */
  port: number | null
  /** A transparent proxy's interception rules (null for the others). */
  intercept: TcpInterceptRule[] | null
  /** Layout before a splice. */
  layout: '1-path' | '2-path'
  /** Final stage of a splice ('ipfwd-shared': a row of the forwarder's shared IP/FWD path; not for http). */
  mode: 'fwd' | 'ipfwd' | 'ipfwd-shared'
  /** Splice policy. */
  splice: SplicePolicy
  /** End a splice idle this long, ms (0: never). */
  idleMs: number
  /** The validated handler factory (each call builds a fresh handler). */
  handler: (onLog?: (event: Record<string, unknown>) => void) => ProxyHandler
  /** A one-line summary for `pathsplice paths`. */
  summary: string
}

/** A validated configuration. */
export interface RunConfig {
  /** The file it came from. */
  file: string
  /** Log level. */
  log: LogLevel
  /** Devices in order. */
  devices: DeviceConfig[]
  /** Routes of the forwarder. */
  routes: RouteConfig[]
  /** IP router paths. */
  routers: RouterPathConfig[]
  /** Proxies. */
  proxies: ProxyConfig[]
  /** TCP tunables of the forwarder's connections. */
  tcp: { minRtoMs?: number; mslMs?: number; mss?: number }
  /** Control socket path, if any. */
  control: string | null
}

// ------------------------------------------------------------------ helpers

/** Edit distance with adjacent transpositions (optimal string alignment): "tpa" is 1 from "tap". */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)))
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1)
      d[i]![j] = v
    }
  }
  return d[a.length]![b.length]!
}

/** ` (did you mean "x"?)` for the nearest of `choices`, or ''. */
export function didYouMean(word: string, choices: readonly string[]): string {
  let best: string | null = null
  let bestD = Infinity
  for (const c of choices) {
    const dist = editDistance(word.toLowerCase(), c.toLowerCase())
    if (dist < bestD) {
      bestD = dist
      best = c
    }
  }
  return best !== null && bestD <= Math.max(1, Math.floor(best.length / 3)) ? `; did you mean "${best}"?` : ''
}

const show = (n: JNode): string => {
  switch (n.kind) {
    case 'string': return JSON.stringify(n.value)
    case 'number': return String(n.value)
    case 'boolean': return String(n.value)
    case 'null': return 'null'
    case 'array': return 'a list'
    case 'object': return 'an object'
  }
}

/** Reads one object node, refusing unknown keys. */
class Obj {
  constructor(readonly v: Validator, readonly node: JNode & { kind: 'object' }, readonly where: string, allowed: readonly string[]) {
    for (const [k, e] of node.entries) {
      if (!allowed.includes(k)) v.fail(e.key, `${where}: unknown key "${k}"${didYouMean(k, allowed) || `; allowed keys: ${allowed.map(a => `"${a}"`).join(', ')}`}`)
    }
  }
  has(k: string): boolean {
    return this.node.entries.has(k)
  }
  get(k: string): JNode | undefined {
    return this.node.entries.get(k)?.value
  }
  need(k: string, hint: string): JNode {
    const n = this.get(k)
    if (n === undefined) this.v.fail(this.node.pos, `${this.where}: missing "${k}" (${hint})`)
    return n!
  }
  str(k: string, hint: string, dflt?: string): string {
    const n = dflt === undefined ? this.need(k, hint) : this.get(k)
    if (n === undefined) return dflt!
    if (n.kind !== 'string' || n.value === '') this.v.fail(n.pos, `${this.where}.${k}: expected ${hint}, got ${show(n)}`)
    return (n as { value: string }).value
  }
  optStr(k: string, hint: string): string | undefined {
    return this.has(k) ? this.str(k, hint) : undefined
  }
  int(k: string, lo: number, hi: number, hint: string, dflt?: number): number {
    const n = dflt === undefined ? this.need(k, hint) : this.get(k)
    if (n === undefined) return dflt!
    if (n.kind !== 'number' || !Number.isInteger(n.value) || n.value < lo || n.value > hi) this.v.fail(n.pos, `${this.where}.${k}: expected ${hint} (an integer ${lo}..${hi}), got ${show(n)}`)
    return (n as { value: number }).value
  }
  oneOf<T extends string>(k: string, choices: readonly T[], dflt?: T): T {
    const n = dflt === undefined ? this.need(k, `one of ${choices.map(c => `"${c}"`).join(', ')}`) : this.get(k)
    if (n === undefined) return dflt!
    if (n.kind !== 'string' || !choices.includes(n.value as T)) {
      const got = n.kind === 'string' ? didYouMean(n.value, choices) : ''
      this.v.fail(n.pos, `${this.where}.${k}: expected one of ${choices.map(c => `"${c}"`).join(', ')}, got ${show(n)}${got}`)
    }
    return (n as { value: string }).value as T
  }
  bool(k: string, dflt: boolean): boolean {
    const n = this.get(k)
    if (n === undefined) return dflt
    if (n.kind !== 'boolean') this.v.fail(n.pos, `${this.where}.${k}: expected true or false, got ${show(n)}`)
    return (n as { value: boolean }).value
  }
  list(k: string, hint: string): JNode[] {
    const n = this.get(k)
    if (n === undefined) return []
    if (n.kind !== 'array') this.v.fail(n.pos, `${this.where}.${k}: expected a list [...] of ${hint}, got ${show(n)}`)
    return (n as { items: JNode[] }).items
  }
}

/** The validator: one pass over the tree, failing at the first error. */
class Validator {
  constructor(readonly file: string) {}

  fail(p: Pos, msg: string): never {
    throw new ConfigFileError(this.file, p, msg)
  }

  obj(n: JNode, where: string, allowed: readonly string[]): Obj {
    if (n.kind !== 'object') this.fail(n.pos, `${where}: expected an object {...}, got ${show(n)}`)
    return new Obj(this, n as JNode & { kind: 'object' }, where, allowed)
  }

  /** Runs `f`; a ConfigError or TypeError it throws is reported at `n`. */
  at<T>(n: JNode, where: string, f: () => T): T {
    try {
      return f()
    } catch (err) {
      if (err instanceof ConfigFileError) throw err
      if (err instanceof PathspliceError || err instanceof TypeError) {
        // Drop the library's own "where" prefix ("socks5Proxy: rules[0]: ", our path): ours replaces it.
        const text = err.message.startsWith(`${where}: `) ? err.message.slice(where.length + 2) : err.message.replace(/^[A-Za-z0-9]+: (?:[a-z]+\[\d+\]: )?/, '')
        this.fail(n.pos, `${where}: ${text}`)
      }
      throw err
    }
  }

  cidr(n: JNode | undefined, where: string, example: string): string {
    if (n === undefined || n.kind !== 'string') this.fail(n?.pos ?? { line: 1, column: 1 }, `${where}: expected an IPv4 address with prefix length like "${example}"${n ? `, got ${show(n)}` : ''}`)
    const s = (n as { value: string }).value
    if (!s.includes('/')) this.fail(n!.pos, `${where}: "${s}" has no prefix length; write it like "${s}/24"`)
    this.at(n!, where, () => parseCidr(s, where))
    return s
  }

  ip(n: JNode | undefined, where: string): string {
    if (n === undefined || n.kind !== 'string') this.fail(n?.pos ?? { line: 1, column: 1 }, `${where}: expected an IPv4 address like "10.0.0.1"${n ? `, got ${show(n)}` : ''}`)
    const s = (n as { value: string }).value
    this.at(n!, where, () => parseIPv4(s))
    return s
  }

  /** `"10.0.1.2:8080"` or `{ "ip": "10.0.1.2", "port": 8080 }`. */
  server(n: JNode, where: string): HttpServer {
    if (n.kind === 'string') {
      const m = /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(n.value)
      if (m === null) this.fail(n.pos, `${where}: expected "ip:port" like "10.0.1.2:8080", got ${show(n)}`)
      this.at(n, where, () => parseIPv4(m![1]!))
      const port = Number(m![2])
      if (!(port >= 1 && port <= 65535)) this.fail(n.pos, `${where}: port ${port} is out of range 1..65535`)
      return { ip: m![1]!, port }
    }
    const o = this.obj(n, where, ['ip', 'port'])
    return { ip: this.ip(o.need('ip', 'the server address'), `${where}.ip`), port: o.int('port', 1, 65535, 'the server port') }
  }
}

const DEVICE_KEYS = ['name', 'type', 'address', 'mtu', 'ifname', 'filter', 'peer', 'delayMs'] as const
const TOP_KEYS = ['log', 'devices', 'routes', 'paths', 'proxies', 'tcp', 'control'] as const
const PROXY_KEYS = ['name', 'type', 'port', 'layout', 'mode', 'splice', 'idleMs', 'server', 'rules', 'users', 'hosts', 'routes', 'default', 'allowConnect', 'connectRules', 'intercept'] as const
const PROXY_TYPE_KEYS: Record<ProxyConfig['type'], readonly string[]> = {
  null: ['server'],
  socks5: ['rules', 'users', 'hosts'],
  http: ['routes', 'default', 'allowConnect', 'connectRules', 'hosts'],
  transparent: ['intercept', 'rules'],
}

function splicePolicy(v: Validator, o: Obj, where: string, type: ProxyConfig['type']): SplicePolicy {
  const n = o.get('splice')
  const expected = `expected "never", "after-control", "proxy" or { "afterBytes": N }`
  if (n === undefined) return type === 'http' ? 'proxy' : 'after-control'
  let p: SplicePolicy
  if (n.kind === 'string') {
    const choices = ['never', 'after-control', 'proxy'] as const
    if (!(choices as readonly string[]).includes(n.value)) v.fail(n.pos, `${where}.splice: ${expected}, got ${show(n)}${didYouMean(n.value, choices)}`)
    p = n.value as SplicePolicy
  } else if (n.kind === 'object') {
    const so = v.obj(n, `${where}.splice`, ['afterBytes'])
    p = { afterBytes: so.int('afterBytes', 0, 2 ** 52, 'server bytes relayed before the splice') }
  } else {
    v.fail(n.pos, `${where}.splice: ${expected}, got ${show(n)}`)
  }
  if (typeof p! === 'object' && type !== 'null' && type !== 'transparent') {
    v.fail(n.pos, `${where}.splice: { "afterBytes": N } applies to "null" and "transparent" proxies (plug gateways); a ${type} proxy splices after its control phase ("after-control"), by its own decision ("proxy") or "never"`)
  }
  if (p! === 'proxy' && type === 'transparent') {
    v.fail(n.pos, `${where}.splice: a ${type} proxy makes no decisions of its own; use "after-control" (splice once connected), { "afterBytes": N } or "never"`)
  }
  if (p! === 'after-control' && type === 'http') {
    v.fail(n.pos, `${where}.splice: an http proxy has no single control phase (each request is one); use "proxy" (splice each response body, unsplice for the next request) or "never"`)
  }
  return p!
}

/** Hosts map (`{ "name": "10.0.1.2" }`) for SOCKS5 domain names and HTTP CONNECT targets. */
function hostsMap(v: Validator, o: Obj, where: string): ((name: string) => number | null) | undefined {
  const n = o.get('hosts')
  if (n === undefined) return undefined
  const ho = v.obj(n, `${where}.hosts`, [...(n.kind === 'object' ? n.entries.keys() : [])])
  const map = new Map<string, number>()
  for (const [k, e] of ho.node.entries) map.set(k.toLowerCase(), parseIPv4(v.ip(e.value, `${where}.hosts["${k}"]`)))
  return name => map.get(name.toLowerCase()) ?? null
}

function rules(v: Validator, items: JNode[], where: string): Socks5Rule[] {
  return items.map((r, i) => {
    const w = `${where}[${i}]`
    const ro = v.obj(r, w, ['action', 'dst', 'ports', 'user'])
    const rule: Socks5Rule = { action: ro.oneOf('action', ['allow', 'deny'] as const) }
    if (ro.has('dst')) {
      const d = ro.get('dst')!
      if (d.kind !== 'string') v.fail(d.pos, `${w}.dst: expected a network like "10.0.1.0/24" or an address, got ${show(d)}`)
      rule.dst = (d as { value: string }).value
      v.at(d, `${w}.dst`, () => compileRules([{ action: 'allow', dst: rule.dst! }]))
    }
    const p = ro.get('ports')
    if (p !== undefined) {
      if (p.kind === 'number') rule.ports = p.value
      else if (p.kind === 'array' && p.items.length === 2 && p.items.every(x => x.kind === 'number')) rule.ports = [(p.items[0] as { value: number }).value, (p.items[1] as { value: number }).value]
      else v.fail(p.pos, `${w}.ports: expected a port (80) or an inclusive range [8000, 8999], got ${show(p)}`)
      const [lo, hi] = typeof rule.ports === 'number' ? [rule.ports, rule.ports] : rule.ports!
      if (!(Number.isInteger(lo) && Number.isInteger(hi) && lo >= 0 && hi <= 65535 && lo <= hi)) v.fail(p.pos, `${w}.ports: expected ports within 0..65535 with lo <= hi, got ${JSON.stringify(rule.ports)}`)
    }
    const u = ro.optStr('user', 'a user name')
    if (u !== undefined) rule.user = u
    // compileRules checks the network and ports; report at the rule.
    v.at(r, w, () => socks5Proxy({ rules: [rule] }))
    return rule
  })
}

function proxy(v: Validator, n: JNode, i: number, ports: Map<number, string>, names: Set<string>): ProxyConfig {
  const where = `proxies[${i}]`
  const o = v.obj(n, where, PROXY_KEYS)
  const type = o.oneOf('type', ['null', 'socks5', 'http', 'transparent'] as const)
  for (const [k, e] of o.node.entries) {
    if ((PROXY_KEYS as readonly string[]).indexOf(k) >= 8 && !PROXY_TYPE_KEYS[type].includes(k)) {
      v.fail(e.key, `${where}: "${k}" does not apply to a ${type} proxy (its keys: ${PROXY_TYPE_KEYS[type].map(x => `"${x}"`).join(', ')})`)
    }
  }
  const name = o.str('name', 'a name for logs and stats', `${type}-${i}`)
  if (names.has(name)) v.fail(o.get('name')?.pos ?? n.pos, `${where}.name: "${name}" is already used by another proxy; names must be unique`)
  names.add(name)
  // A transparent proxy needs no port of its own (clients connect to the servers' addresses).
  const port = type === 'transparent' && !o.has('port') ? null : o.int('port', 1, 65535, 'the port clients connect to')
  if (port !== null) {
    const other = ports.get(port)
    if (other !== undefined) v.fail(o.get('port')!.pos, `${where}.port: ${port} is already taken by proxy "${other}"; give each proxy its own port`)
    ports.set(port, name)
  }
  let intercept: TcpInterceptRule[] | null = null
  const layout = o.oneOf('layout', ['1-path', '2-path'] as const, '1-path')
  const mode = o.oneOf('mode', ['fwd', 'ipfwd', 'ipfwd-shared'] as const, 'fwd')
  if (mode === 'ipfwd-shared' && type === 'http') {
    v.fail(o.get('mode')!.pos, `${where}.mode: 'ipfwd-shared' cannot unsplice, and the http proxy unsplices after each response (HTTP/1.1 keep-alive); use 'ipfwd' or 'fwd'`)
  }
  const idleMs = o.int('idleMs', 0, 2 ** 31, 'ms without a segment before a splice ends', 0)
  const splice = splicePolicy(v, o, where, type)
  let handler: ProxyConfig['handler']
  let summary: string
  if (type === 'null') {
    const s = v.server(o.need('server', 'the server, "ip:port"'), `${where}.server`)
    const when = splice === 'never' ? 'never' as const : typeof splice === 'object' ? splice : 'immediately' as const
    handler = () => nullProxy({ server: s.ip, port: s.port, splice: when, mode })
    summary = `plug gateway to ${s.ip}:${s.port}`
  } else if (type === 'transparent') {
    if (!o.has('intercept')) v.fail(n.pos, `${where}: missing "intercept" (which connections routed through the forwarder to take, e.g. "intercept": [{ "dst": "10.0.1.0/24", "ports": [80, 8080] }])`)
    const items = o.list('intercept', 'rules { "dst": "10.0.1.0/24", "ports": [80] }')
    if (items.length === 0) v.fail(o.get('intercept')!.pos, `${where}.intercept: the list is empty; add a rule like { "dst": "10.0.1.0/24", "ports": [80] }`)
    intercept = items.map((r, j) => interceptRule(v, r, `${where}.intercept[${j}]`))
    const rs = o.has('rules') ? rules(v, o.list('rules', 'rules { "action": "allow", "dst": "10.0.1.0/24" }'), `${where}.rules`) : undefined
    const when = splice === 'never' ? 'never' as const : typeof splice === 'object' ? splice : 'immediately' as const
    handler = onLog => transparentProxy({
      splice: when, mode, ...(rs ? { rules: rs } : {}), ...(onLog ? { onLog: e => onLog(e as unknown as Record<string, unknown>) } : {}),
    })
    summary = `transparent, intercepting ${intercept.map(r => `${r.dst}${r.ports === undefined ? '' : `:${[r.ports].flat().join(',')}`}${r.src === undefined ? '' : ` from ${r.src}`}`).join('; ')}${rs ? `, ${rs.length} rule(s)` : ''}`
  } else if (type === 'socks5') {
    const rs = rules(v, o.list('rules', 'rules { "action": "allow", "dst": "10.0.1.0/24" }'), `${where}.rules`)
    if (!o.has('rules')) v.fail(n.pos, `${where}: missing "rules" (SOCKS5 denies by default; add e.g. "rules": [{ "action": "allow", "dst": "10.0.1.0/24" }])`)
    let users: Record<string, string> | undefined
    const un = o.get('users')
    if (un !== undefined) {
      const uo = v.obj(un, `${where}.users`, [...(un.kind === 'object' ? un.entries.keys() : [])])
      users = {}
      for (const [u, e] of uo.node.entries) {
        if (e.value.kind !== 'string') v.fail(e.value.pos, `${where}.users["${u}"]: expected the password as a "string", got ${show(e.value)}`)
        users[u] = (e.value as { value: string }).value
      }
    }
    const resolve = hostsMap(v, o, where)
    handler = onLog => socks5Proxy({
      rules: rs, splice: splice !== 'never', mode, ...(users ? { users } : {}), ...(resolve ? { resolve } : {}),
      ...(onLog ? { onLog: e => onLog(e as unknown as Record<string, unknown>) } : {}),
    })
    summary = `SOCKS5, ${rs.length} rule(s)${users ? `, ${Object.keys(users).length} user(s)` : ''}`
  } else {
    const routes = o.list('routes', 'routes { "host": "a.example", "servers": ["10.0.1.2:80"] }').map((r, j) => {
      const w = `${where}.routes[${j}]`
      const ro = v.obj(r, w, ['host', 'pathPrefix', 'servers'])
      const host = ro.optStr('host', 'a host name like "a.example" or "*.example"')
      const prefix = ro.optStr('pathPrefix', 'a path prefix like "/api"')
      if (prefix !== undefined && !prefix.startsWith('/')) v.fail(ro.get('pathPrefix')!.pos, `${w}.pathPrefix: must start with "/", got ${JSON.stringify(prefix)}; write "/${prefix}"`)
      const servers = ro.list('servers', '"ip:port"').map((s, k) => v.server(s, `${w}.servers[${k}]`))
      if (!ro.has('servers')) v.fail(r.pos, `${w}: missing "servers" (a list of "ip:port")`)
      return { ...(host ? { host } : {}), ...(prefix ? { pathPrefix: prefix } : {}), servers }
    })
    const dflt = o.has('default') ? o.list('default', '"ip:port"').map((s, k) => v.server(s, `${where}.default[${k}]`)) : undefined
    const allowConnect = o.bool('allowConnect', false)
    const connectRules = o.has('connectRules') ? rules(v, o.list('connectRules', 'rules'), `${where}.connectRules`) : []
    // The SOCKS5 rule language serves CONNECT targets too (first match wins, default deny).
    const match = compileRules(connectRules)
    const connectCheck = (ip: number, port: number): boolean => match(ip, port, null).allowed
    const resolve = hostsMap(v, o, where)
    const build = (onLog?: (event: Record<string, unknown>) => void): ProxyHandler => httpProxy({
      // ('ipfwd-shared' was refused above for http.)
      routes, splice: splice !== 'never', ...(mode !== 'ipfwd-shared' ? { mode } : {}), allowConnect, connectAllow: connectCheck,
      ...(dflt ? { default: dflt } : {}), ...(resolve ? { resolve } : {}),
      ...(onLog ? { onLog: e => onLog(e as unknown as Record<string, unknown>) } : {}),
    })
    v.at(n, where, () => build())
    handler = build
    summary = `HTTP, ${routes.length} route(s)${dflt ? ', a default pool' : ''}${allowConnect ? ', CONNECT' : ''}`
  }
  return { name, type, port, intercept, layout, mode, splice, idleMs, handler, summary }
}

/** One interception rule: `{ "dst": "10.0.1.0/24", "ports": [80, 8080], "src": "10.0.0.0/24" }`. */
function interceptRule(v: Validator, r: JNode, w: string): TcpInterceptRule {
  const ro = v.obj(r, w, ['dst', 'ports', 'src'])
  const net = (k: 'dst' | 'src'): string => {
    const d = ro.get(k)!
    if (d.kind !== 'string') v.fail(d.pos, `${w}.${k}: expected a network like "10.0.1.0/24" or an address, got ${show(d)}`)
    const text = (d as { value: string }).value
    // The SOCKS5 rule parser checks the network (host bits, prefix length) with the same messages.
    v.at(d, `${w}.${k}`, () => compileRules([{ action: 'allow', dst: text }]))
    return text
  }
  const rule: TcpInterceptRule = { dst: ro.has('dst') ? net('dst') : v.fail(r.pos, `${w}: missing "dst" (the servers' network to intercept, like "10.0.1.0/24")`) }
  if (ro.has('src')) rule.src = net('src')
  const p = ro.get('ports')
  if (p !== undefined) {
    const list = p.kind === 'number' ? [p] : p.kind === 'array' ? p.items : null
    if (list === null || list.length === 0) v.fail(p.pos, `${w}.ports: expected a port (80) or a list of ports [80, 8080], got ${p.kind === 'array' ? 'an empty list' : show(p)}`)
    for (const x of list!) {
      if (x.kind !== 'number' || !Number.isInteger(x.value) || x.value < 1 || x.value > 65535) v.fail(x.pos, `${w}.ports: ${show(x)} is not a port 1..65535`)
    }
    rule.ports = list!.map(x => (x as { value: number }).value)
  }
  return rule
}

/** Maps a spec position inside a JSON string to the file (exact when the string has no escapes). */
function specPos(n: JNode & { kind: 'string' }, line: number, column: number): Pos {
  if (!n.raw || line !== 1) return n.pos
  return { line: n.pos.line, column: n.pos.column + column }
}

function routerPath(v: Validator, n: JNode, i: number, devices: Map<string, DeviceConfig>): RouterPathConfig {
  const where = `paths[${i}]`
  if (n.kind !== 'string') v.fail(n.pos, `${where}: expected a path spec "name: dev -> ETH -> IP(route) -> ETH -> dev", got ${show(n)}`)
  const s = n as JNode & { kind: 'string' }
  let chain: SpecChain
  try {
    const spec = parseSpec(s.value, v.file)
    if (spec.paths.length !== 1) v.fail(s.pos, `${where}: expected exactly one path in the spec, got ${spec.paths.length}; put each path in its own string`)
    chain = spec.paths[0]!
  } catch (err) {
    if (err instanceof PathSpecSyntaxError) v.fail(specPos(s, err.line, err.column), `${where}: ${err.message.slice(err.message.indexOf(': ', v.file.length) + 2)}`)
    throw err
  }
  const els = chain.elements
  const shape = els.map((e, k) => (k === 0 || k === els.length - 1 ? 'dev' : e.name.toUpperCase() + (e.args.positional.length ? `(${e.args.positional.join(',')})` : ''))).join(' -> ')
  if (shape !== 'dev -> ETH -> IP(route) -> ETH -> dev') {
    const bad = els.find((e, k) => k > 0 && k < els.length - 1 && !['ETH', 'IP'].includes(e.name.toUpperCase())) ?? els[2] ?? els[0]!
    v.fail(specPos(s, 1, bad.column), `${where}: pathsplice run builds IP router paths from specs, "dev -> ETH -> IP(route) -> ETH -> dev"; got "${shape}". Proxies are configured under "proxies" (their paths are built per connection)`)
  }
  for (const k of [0, els.length - 1]) {
    const e = els[k]!
    if (!devices.has(e.name)) v.fail(specPos(s, 1, e.column), `${where}: unknown device '${e.name}'${didYouMean(e.name, [...devices.keys()])}; devices: ${[...devices.keys()].join(', ')}`)
  }
  if (els[0]!.name === els[els.length - 1]!.name) v.fail(specPos(s, 1, els[els.length - 1]!.column), `${where}: a router path needs two different devices`)
  return { name: chain.name ?? `router-${i}`, from: els[0]!.name, to: els[els.length - 1]!.name, spec: s.value }
}

function device(v: Validator, n: JNode, i: number, names: Map<string, DeviceConfig>): DeviceConfig {
  const where = `devices[${i}]`
  const o = v.obj(n, where, DEVICE_KEYS)
  const name = o.str('name', 'a device name like "lan"')
  if (!/^[A-Za-z][A-Za-z0-9_.-]{0,14}$/.test(name)) v.fail(o.get('name')!.pos, `${where}.name: "${name}" must start with a letter and have at most 15 letters, digits, '_', '.', '-' (a Linux interface name)`)
  if (names.has(name)) v.fail(o.get('name')!.pos, `${where}.name: "${name}" is already a device; names must be unique`)
  const type = o.oneOf('type', ['tap', 'memory', 'pcap'] as const)
  const address = v.cidr(o.get('address') ?? (v.fail(n.pos, `${where}: missing "address" (the forwarder's address on this device, like "10.0.0.1/24")`) as never), `${where}.address`, '10.0.0.1/24')
  const mtu = o.int('mtu', 576, 65535, 'the MTU', 1500)
  if (type !== 'pcap' && o.has('filter')) v.fail(o.node.entries.get('filter')!.key, `${where}: "filter" applies to pcap devices only`)
  if (type !== 'tap' && o.has('peer')) v.fail(o.node.entries.get('peer')!.key, `${where}: "peer" (a namespace for the kernel side) applies to tap devices only`)
  const ifname = type === 'pcap' ? o.str('ifname', 'the interface to capture on, like "eth0"') : o.str('ifname', 'a Linux interface name', name)
  if (type !== 'memory' && o.has('delayMs')) v.fail(o.node.entries.get('delayMs')!.key, `${where}: "delayMs" (a simulated wire delay) applies to memory devices only`)
  const delayMs = o.int('delayMs', 0, 10_000, 'the one-way wire delay in ms', 0)
  const d: DeviceConfig = { name, type, address, mtu, ifname, delayMs }
  const f = o.optStr('filter', 'a BPF filter like "tcp port 80"')
  if (f !== undefined) d.filter = f
  const pn = o.get('peer')
  if (pn !== undefined) {
    const po = v.obj(pn, `${where}.peer`, ['netns', 'address', 'routes'])
    const netns = po.str('netns', 'a namespace name run creates, like "lan-ns"')
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,30}$/.test(netns)) v.fail(po.get('netns')!.pos, `${where}.peer.netns: "${netns}" is not a usable namespace name (letters, digits, '_', '.', '-', at most 31)`)
    const paddr = v.cidr(po.get('address') ?? (v.fail(pn.pos, `${where}.peer: missing "address" (the kernel side's address, like "10.0.0.2/24")`) as never), `${where}.peer.address`, '10.0.0.2/24')
    const routes = po.list('routes', 'routes { "cidr": "10.0.1.0/24", "via": "10.0.0.1" }').map((r, k) => {
      const ro = v.obj(r, `${where}.peer.routes[${k}]`, ['cidr', 'via'])
      return { cidr: v.cidr(ro.need('cidr', 'a prefix like "10.0.1.0/24"'), `${where}.peer.routes[${k}].cidr`, '10.0.1.0/24'), via: v.ip(ro.need('via', 'a gateway address'), `${where}.peer.routes[${k}].via`) }
    })
    d.peer = { netns, address: paddr, routes }
  }
  return d
}

/** Validates a parsed tree. Throws {@link ConfigFileError} at the first problem. */
export function validateConfig(root: JNode, file: string): RunConfig {
  const v = new Validator(file)
  const o = v.obj(root, 'config', TOP_KEYS)
  const log = o.oneOf('log', LOG_LEVELS, 'info')
  const devices = new Map<string, DeviceConfig>()
  const dn = o.need('devices', 'a list of devices, e.g. [{ "name": "lan", "type": "tap", "address": "10.0.0.1/24" }]')
  o.list('devices', 'devices').forEach((d, i) => {
    const c = device(v, d, i, devices)
    devices.set(c.name, c)
  })
  if (devices.size === 0) v.fail(dn.pos, 'devices: the list is empty; a forwarder needs at least one device')
  const netns = new Set<string>()
  for (const [i, d] of [...devices.values()].entries()) {
    if (d.peer === undefined) continue
    if (netns.has(d.peer.netns)) v.fail((dn as { items: JNode[] }).items[i]!.pos, `devices[${i}].peer.netns: "${d.peer.netns}" is used by two devices; give each its own namespace`)
    netns.add(d.peer.netns)
  }
  const routes = o.list('routes', 'routes { "cidr": "0.0.0.0/0", "via": "10.0.1.254" }').map((r, i) => {
    const where = `routes[${i}]`
    const ro = v.obj(r, where, ['cidr', 'via', 'dev', 'metric'])
    const rc: RouteConfig = { cidr: v.cidr(ro.need('cidr', 'a prefix like "0.0.0.0/0"'), `${where}.cidr`, '0.0.0.0/0') }
    if (ro.has('via')) rc.via = v.ip(ro.get('via'), `${where}.via`)
    const dev = ro.optStr('dev', 'a device name')
    if (dev !== undefined) {
      if (!devices.has(dev)) v.fail(ro.get('dev')!.pos, `${where}.dev: unknown device "${dev}"${didYouMean(dev, [...devices.keys()])}`)
      rc.dev = dev
    }
    if (rc.via === undefined && rc.dev === undefined) v.fail(r.pos, `${where}: give "via" (a gateway) or "dev" (a device), or both`)
    if (ro.has('metric')) rc.metric = ro.int('metric', 0, 2 ** 31, 'a metric')
    return rc
  })
  const routers = o.list('paths', 'path specs').map((p, i) => routerPath(v, p, i, devices))
  const used = new Map<string, string>()
  for (const [i, r] of routers.entries()) {
    for (const dname of [r.from, r.to]) {
      const other = used.get(dname)
      if (other !== undefined) v.fail((o.get('paths') as { items: JNode[] }).items[i]!.pos, `paths[${i}]: device '${dname}' is already routed by "${other}"; one router path per device`)
      used.set(dname, r.name)
    }
  }
  const ports = new Map<number, string>()
  const pnames = new Set<string>()
  const proxies = o.list('proxies', 'proxies').map((p, i) => proxy(v, p, i, ports, pnames))
  const tcp: RunConfig['tcp'] = {}
  const tn = o.get('tcp')
  if (tn !== undefined) {
    const to = v.obj(tn, 'tcp', ['minRtoMs', 'mslMs', 'mss'])
    if (to.has('minRtoMs')) tcp.minRtoMs = to.int('minRtoMs', 1, 60_000, 'the minimum RTO in ms')
    if (to.has('mslMs')) tcp.mslMs = to.int('mslMs', 1, 120_000, 'the maximum segment lifetime in ms (TIME-WAIT lasts 2 MSL)')
    if (to.has('mss')) tcp.mss = to.int('mss', 88, 65495, 'the MSS')
  }
  const control = o.optStr('control', 'a Unix socket path') ?? null
  return { file, log, devices: [...devices.values()], routes, routers, proxies, tcp, control }
}

/** Parses and validates config text. Throws {@link ConfigFileError}. */
export function parseConfig(text: string, file: string): RunConfig {
  return validateConfig(parseJsonc(text, file), file)
}

export { ConfigFileError }
