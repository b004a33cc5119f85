/**
 * The control socket of `pathsplice run --control <path>`: a Unix socket speaking one JSON
 * request line and one JSON reply line per connection.
 *
 * ```
 *   {"cmd":"stats"}                                        -> {"ok":true,"stats":{...}}
 *   {"cmd":"paths"}                                        -> {"ok":true,"text":"..."}
 *   {"cmd":"record","device":"lan","file":"x.pcap","frames":100,"ms":5000} -> {"ok":true,"frames":100}
 *   {"cmd":"replay","device":"lan","file":"x.pcap","pace":"fast"}          -> {"ok":true,"frames":42,"bytes":...}
 *   anything else                                          -> {"ok":false,"error":"..."}
 * ```
 * The socket file is created with mode 0600 (only its owner may steer the forwarder) and
 * removed on close.
 * @module
 */
import { chmodSync, existsSync, unlinkSync } from 'node:fs'
import { createConnection, createServer, type Server } from 'node:net'
import { PathspliceError } from '../core/errors.js'
import { replayPcap } from '../drivers/pcap/replay.js'
import type { Forwarder } from './config/runtime.js'

/** A control request. */
export type ControlRequest =
  | { cmd: 'stats' }
  | { cmd: 'paths' }
  | { cmd: 'record'; device: string; file: string; frames?: number; ms?: number }
  | { cmd: 'replay'; device: string; file: string; pace?: 'fast' | 'recorded' }

/** A control reply. */
export type ControlReply = { ok: true; [k: string]: unknown } | { ok: false; error: string }

async function handle(fw: Forwarder, req: ControlRequest): Promise<ControlReply> {
  switch (req.cmd) {
    case 'stats':
      return { ok: true, stats: fw.stats() }
    case 'paths':
      return { ok: true, text: fw.describe() }
    case 'record': {
      const dev = fw.devices.get(req.device)
      if (dev === undefined) return { ok: false, error: `no device '${req.device}'; devices: ${[...fw.devices.keys()].join(', ')}` }
      if (dev.recording) return { ok: false, error: `device '${req.device}' is already being recorded` }
      if (!(req.frames ?? 0) && !(req.ms ?? 0)) return { ok: false, error: 'give a limit: frames or ms' }
      const frames = await dev.record(req.file, { frames: req.frames ?? 0, ms: req.ms ?? 0 })
      return { ok: true, frames, file: req.file }
    }
    case 'replay': {
      const dev = fw.devices.get(req.device)
      if (dev === undefined) return { ok: false, error: `no device '${req.device}'; devices: ${[...fw.devices.keys()].join(', ')}` }
      const r = await replayPcap(req.file, (batch, n) => dev.inject(batch, n), { pace: req.pace ?? 'fast' })
      return { ok: true, frames: r.frames, bytes: r.bytes, durationMs: Math.round(r.durationMs) }
    }
    default:
      return { ok: false, error: `unknown command ${JSON.stringify((req as { cmd?: unknown }).cmd)}; commands: stats, paths, record, replay` }
  }
}

/** Serves `fw` on the Unix socket at `path` (a stale socket file is replaced). */
export async function serveControl(fw: Forwarder, path: string): Promise<Server> {
  // sun_path holds 108 bytes with the terminating NUL (unix(7)).
  const len = Buffer.byteLength(path)
  if (len > 107) throw new PathspliceError(`control socket path is ${len} bytes long; Unix sockets allow at most 107: choose a shorter path such as /tmp/pathsplice.sock`, 'PS_ERR_USAGE')
  if (existsSync(path)) unlinkSync(path)
  const server = createServer(sock => {
    let buf = ''
    sock.setEncoding('utf8')
    sock.on('error', () => undefined)
    sock.on('data', (d: string) => {
      buf += d
      const nl = buf.indexOf('\n')
      if (nl < 0) {
        if (buf.length > 65536) sock.destroy()
        return
      }
      const line = buf.slice(0, nl)
      buf = ''
      let req: ControlRequest
      try {
        req = JSON.parse(line) as ControlRequest
      } catch {
        sock.end(JSON.stringify({ ok: false, error: 'the request is not JSON' }) + '\n')
        return
      }
      handle(fw, req).then(
        r => sock.end(JSON.stringify(r) + '\n'),
        (err: Error) => sock.end(JSON.stringify({ ok: false, error: err.message }) + '\n'),
      )
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(path, () => resolve())
  })
  chmodSync(path, 0o600)
  return server
}

/** Closes the control server and removes its socket file. */
export async function closeControl(server: Server, path: string): Promise<void> {
  await new Promise<void>(res => server.close(() => res()))
  if (existsSync(path)) unlinkSync(path)
}

/** Sends one request to the control socket at `path`; rejects after `timeoutMs`. */
export function controlRequest(path: string, req: ControlRequest, timeoutMs = 10_000): Promise<ControlReply> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path)
    let out = ''
    const timer = setTimeout(() => {
      sock.destroy()
      reject(new Error(`no answer from the control socket ${path} within ${timeoutMs} ms`))
    }, timeoutMs)
    sock.setEncoding('utf8')
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'))
    sock.on('data', (d: string) => { out += d })
    sock.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      reject(new Error(`cannot reach the control socket ${path}: ${err.code ?? err.message} (is \`pathsplice run --control ${path}\` running?)`))
    })
    sock.on('end', () => {
      clearTimeout(timer)
      try {
        resolve(JSON.parse(out) as ControlReply)
      } catch {
        reject(new Error(`bad answer from the control socket ${path}: ${out.slice(0, 200)}`))
      }
    })
  })
}
