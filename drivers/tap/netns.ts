/**
 * Network namespaces for tests, demos and benchmarks with real Linux peers: create a
 * uniquely named namespace, move links into it, run commands in it, and always clean up.
 *
 * Names are `<prefix>-<pid>-<n>` (at most 15 characters, so they also serve as interface
 * names). Cleanup happens three ways: `delete()` (call it from `t.teardown`), a sync sweep
 * of this process's namespaces on `process.exit`, and a sweep of namespaces left by dead
 * processes (their pid is in the name) each time a namespace is created.
 *
 * Everything goes through iproute2 (`ip netns add|del|exec`, `ip link set ... netns`), as
 * documented in ip-netns(8); it needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN).
 * @module
 */
import { execFile, execFileSync, spawn } from 'node:child_process'
import type { ChildProcess, SpawnOptions } from 'node:child_process'
import { accessSync, constants, readdirSync } from 'node:fs'
import { PathspliceError } from '../../core/errors.js'

/** Output of a finished command. */
export interface RunResult {
  /** Standard output (UTF-8). */
  stdout: string
  /** Standard error (UTF-8). */
  stderr: string
}

/** Options of {@link Netns.run} and {@link run}. */
export interface RunOptions {
  /** Kill the command after this many milliseconds (default 10 000). */
  timeoutMs?: number
  /** Bytes written to the command's standard input. */
  input?: string | Uint8Array
}

/** A command failed or timed out; the message has its exit status and standard error. */
export class CommandError extends PathspliceError {
  declare readonly code: 'PS_ERR_COMMAND'
  /** Standard error of the command. */
  readonly stderr: string
  /** Standard output of the command. */
  readonly stdout: string
  constructor(message: string, stdout: string, stderr: string, options?: { cause?: unknown }) {
    super(message, 'PS_ERR_COMMAND', options)
    this.name = 'CommandError'
    this.stdout = stdout
    this.stderr = stderr
  }
}

let counter = 0

/** A name unique on this machine while this process lives: `<prefix>-<pid>-<n>` (≤ 15 characters). */
export function uniqueName(prefix = 'ps'): string {
  const name = `${prefix}-${process.pid}-${counter++}`
  if (name.length > 15) throw new RangeError(`name '${name}' is longer than 15 characters (IFNAMSIZ): use a shorter prefix`)
  return name
}

/** Runs `cmd args` and resolves with its output; rejects with a {@link CommandError} on a non-zero exit or timeout. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: opts.timeoutMs ?? 10_000, maxBuffer: 64 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) {
        const why = err.killed ? `timed out after ${opts.timeoutMs ?? 10_000} ms` : `failed (${err.code ?? err.signal})`
        reject(new CommandError(`${cmd} ${args.join(' ')} ${why}: ${stderr.trim() || err.message}`, stdout, stderr, { cause: err }))
      } else {
        resolve({ stdout, stderr })
      }
    })
    if (opts.input !== undefined) child.stdin?.end(opts.input)
  })
}

/**
 * Why namespaces and TAP devices cannot be used here, or null if they can: needs root,
 * `/dev/net/tun` and iproute2. Tests pass this as their skip reason.
 */
export function netAdminUnavailable(): string | null {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'needs root (CAP_NET_ADMIN) for TAP devices and network namespaces'
  try {
    accessSync('/dev/net/tun', constants.R_OK | constants.W_OK)
  } catch {
    return '/dev/net/tun is absent (no tun module in this kernel or container)'
  }
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' })
  } catch {
    return 'iproute2 (`ip`) is not installed'
  }
  return null
}

/** Whether `tool` is on PATH (for tests that need tcpdump, tshark, iperf3). */
export function haveTool(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${JSON.stringify(tool)}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

const live = new Set<Netns>()
let exitHookInstalled = false

function installExitHook(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  // Last resort for a test that threw before its teardown: delete synchronously on exit.
  process.on('exit', () => {
    for (const ns of live) ns.deleteSync()
  })
}

/**
 * Deletes namespaces named `<prefix>-<pid>-<n>` whose process is gone (left behind by a
 * crashed or killed run). Returns the names deleted.
 */
export function sweepStaleNamespaces(prefix = 'ps'): string[] {
  let names: string[]
  try {
    names = readdirSync('/run/netns')
  } catch {
    return []
  }
  const re = new RegExp(`^${prefix.replace(/[^\w]/g, '\\$&')}-(\\d+)-\\d+$`)
  const gone: string[] = []
  for (const n of names) {
    const m = re.exec(n)
    if (!m || Number(m[1]) === process.pid || pidAlive(Number(m[1]))) continue
    try {
      execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' })
      gone.push(n)
    } catch {
      // someone else removed it meanwhile
    }
  }
  return gone
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM'
  }
}

/** A network namespace this process created; see the module comment for the cleanup rules. */
export class Netns {
  /** The namespace's name (also usable as an interface name). */
  readonly name: string
  private readonly children = new Set<ChildProcess>()
  private deleted = false

  private constructor(name: string) {
    this.name = name
  }

  /** Creates a namespace named `<prefix>-<pid>-<n>` with its loopback up. */
  static async create(prefix = 'ps'): Promise<Netns> {
    installExitHook()
    sweepStaleNamespaces(prefix)
    const ns = new Netns(uniqueName(prefix))
    await run('ip', ['netns', 'add', ns.name])
    live.add(ns)
    try {
      await ns.ip('link', 'set', 'lo', 'up')
    } catch (err) {
      await ns.delete()
      throw err
    }
    return ns
  }

  /** Runs `cmd args` inside the namespace (`ip netns exec`). */
  run(cmd: string, args: readonly string[] = [], opts: RunOptions = {}): Promise<RunResult> {
    this.checkLive()
    return run('ip', ['netns', 'exec', this.name, cmd, ...args], opts)
  }

  /** Runs `ip -n <ns> args...` and returns its standard output. */
  async ip(...args: string[]): Promise<string> {
    this.checkLive()
    return (await run('ip', ['-n', this.name, ...args])).stdout
  }

  /** Starts a long-running command in the namespace; it is killed (SIGKILL) by {@link delete} if still running. */
  spawn(cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): ChildProcess {
    this.checkLive()
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts })
    this.children.add(child)
    child.once('exit', () => this.children.delete(child))
    return child
  }

  /** Moves link `link` (from the current namespace) into this one and optionally sets an address and brings it up. */
  async adopt(link: string, opts: { addr?: string; up?: boolean; mtu?: number } = {}): Promise<void> {
    await moveLink(link, this)
    if (opts.mtu !== undefined) await this.ip('link', 'set', link, 'mtu', String(opts.mtu))
    if (opts.addr !== undefined) await this.ip('addr', 'add', opts.addr, 'dev', link)
    if (opts.up ?? true) await this.ip('link', 'set', link, 'up')
  }

  /** Kills the namespace's spawned commands and deletes it; idempotent. */
  async delete(): Promise<void> {
    if (this.deleted) return
    const waits = [...this.children].map(c => new Promise<void>(res => {
      if (c.exitCode !== null || c.signalCode !== null) return res()
      c.once('exit', () => res())
      c.kill('SIGKILL')
    }))
    await Promise.all(waits)
    this.deleted = true
    live.delete(this)
    await run('ip', ['netns', 'del', this.name]).catch(() => undefined)
  }

  /** Synchronous {@link delete} for exit hooks. */
  deleteSync(): void {
    if (this.deleted) return
    for (const c of this.children) c.kill('SIGKILL')
    this.deleted = true
    live.delete(this)
    try {
      execFileSync('ip', ['netns', 'del', this.name], { stdio: 'ignore' })
    } catch {
      // already gone
    }
  }

  /** True until {@link delete}. */
  get alive(): boolean {
    return !this.deleted
  }

  private checkLive(): void {
    if (this.deleted) throw new PathspliceError(`network namespace ${this.name} was deleted`)
  }
}

/** Moves `link` from the current namespace into `ns` (`ip link set <link> netns <ns>`). */
export async function moveLink(link: string, ns: Netns): Promise<void> {
  await run('ip', ['link', 'set', link, 'netns', ns.name])
}
