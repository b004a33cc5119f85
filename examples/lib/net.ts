/**
 * Shared by the examples: hosts with our TCP attached to the far ends of a forwarder's
 * memory devices, and a small byte-stream wrapper over a TCP connection.
 * @module
 */
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { formatIPv4, parseIPv4 } from '../../core/bytes.js'
import { Host } from '../../paths/host.js'
import { TcpModule, type TcpConnection } from '../../stages/tcp/module.js'
import type { Forwarder } from '../../bin/config/runtime.js'

/** A host with our TCP on the far end of the forwarder's memory device `device`. */
export function peerHost(fw: Forwarder, device: string, address: string, gateway: string): { host: Host; tcp: TcpModule } {
  const dev = fw.peers.get(device)
  if (dev === undefined) throw new Error(`no memory device '${device}'`)
  const host = new Host(fw.sched, { name: `${device}-${address}` })
  const iface = host.addInterface(dev, { address, announce: false })
  // Everything beyond the link goes through the forwarder.
  host.addRoute('0.0.0.0/0', { via: gateway })
  iface.arp.setStatic(parseIPv4(gateway), fw.devices.get(device)!.mac)
  fw.host.interface(device)?.arp.setStatic(parseIPv4(address.slice(0, address.indexOf('/'))), dev.mac)
  return { host, tcp: new TcpModule(host) }
}

/** A byte stream over one TCP connection: queued writes with backpressure, a data callback. */
export class Stream {
  /** Bytes received. */
  received = 0
  /** The peer sent FIN. */
  ended = false
  /** The connection is closed (or reset). */
  closed = false
  /** Why it failed, if it did. */
  error: string | null = null
  private readonly queue: Uint8Array[] = []
  private offset = 0
  private finAfter = false
  private readonly buf = new Uint8Array(65536)

  /** Wraps `conn`; `onData` gets each chunk read (valid during the call only). */
  constructor(readonly conn: TcpConnection, private readonly onData: (chunk: Uint8Array, s: Stream) => void = () => undefined) {
    const tcb = conn.stage.tcb
    tcb.events = {
      connected: () => this.flush(),
      writable: () => this.flush(),
      data: () => this.read(),
      end: () => this.read(),
      error: r => { this.error = r; this.closed = true },
      closed: () => { this.closed = true },
    }
    conn.stage.app = { onData: () => this.read() }
  }

  /** Queues bytes (kept by reference: do not modify them afterwards). */
  write(data: Uint8Array): void {
    this.queue.push(data)
    this.flush()
  }

  /** Sends FIN once everything queued is written. */
  end(): void {
    this.finAfter = true
    this.flush()
  }

  private flush(): void {
    const tcb = this.conn.stage.tcb
    if (tcb.state !== 'ESTABLISHED' && tcb.state !== 'CLOSE-WAIT') return
    while (this.queue.length > 0) {
      const head = this.queue[0]!
      const n = tcb.write(head, this.offset, head.length - this.offset)
      this.offset += n
      if (this.offset < head.length) return
      this.queue.shift()
      this.offset = 0
    }
    if (this.finAfter && !tcb.finQueued) tcb.shutdown()
  }

  private read(): void {
    const tcb = this.conn.stage.tcb
    for (let n; (n = tcb.read(this.buf)) > 0;) {
      this.received += n
      this.onData(this.buf.subarray(0, n), this)
    }
    if (tcb.peerFinished) this.ended = true
  }
}

/** The path of `examples/configs/<name>`, from the sources or from `dist/examples`. */
export function exampleConfig(name: string): string {
  const fromSource = fileURLToPath(new URL(`../configs/${name}`, import.meta.url))
  return existsSync(fromSource) ? fromSource : fileURLToPath(new URL(`../../../examples/configs/${name}`, import.meta.url))
}

/** A two-way transfer of seeded bytes between a client and a server, digests checked. */
export interface Transfer {
  /** True once both directions ended and both connections closed (or one failed). */
  done(): boolean
  /** Bytes the server received from the client / the client from the server. */
  up(): number
  /** See up. */
  down(): number
  /** Both streams arrived whole with matching SHA-256 digests. */
  intact(): boolean
  /** The address the server saw as its peer (the client's, or a proxy's), once connected. */
  serverPeer(): string | null
  /** Why the client's connection failed ('reset', 'refused', ...), or null. */
  clientError(): string | null
}

/**
 * Server on `server` listening on `listenPort` sends `bytes` (seed 2) and the client,
 * connecting to `ip:port`, sends `bytes` (seed 1); both hash what they receive.
 */
export function transfer(client: TcpModule, server: TcpModule, ip: string, port: number, listenPort: number, bytes: number): Transfer {
  const gen = (seed: number): Uint8Array => {
    const b = new Uint8Array(bytes)
    let x = seed
    for (let i = 0; i < bytes; i++) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5
      b[i] = x & 0xff
    }
    return b
  }
  const upData = gen(1)
  const downData = gen(2)
  const digest = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
  const hUp = createHash('sha256')
  const hDown = createHash('sha256')
  let srv: Stream | null = null
  server.listen(listenPort, conn => {
    srv = new Stream(conn, chunk => void hUp.update(chunk))
    srv.write(downData)
    srv.end()
  })
  const cli = new Stream(client.connect(parseIPv4(ip), port), chunk => void hDown.update(chunk))
  cli.write(upData)
  cli.end()
  let verdict: boolean | null = null
  const s = (): Stream | null => srv as Stream | null
  return {
    done: () => (cli.closed && s()?.closed === true) || cli.error !== null || s()?.error != null,
    up: () => s()?.received ?? 0,
    down: () => cli.received,
    serverPeer: () => { const x = s(); return x === null ? null : formatIPv4(x.conn.remoteIp) },
    clientError: () => cli.error,
    intact: () => (verdict ??= cli.received === bytes && s()?.received === bytes && hUp.digest('hex') === digest(upData) && hDown.digest('hex') === digest(downData)),
  }
}
