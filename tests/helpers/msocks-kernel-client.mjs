// The mobile client of tests/tap/msocks-kernel.test.ts, run inside the client namespace
// (`ip netns exec <ns> node msocks-kernel-client.mjs <json>`): Node's net runs in the
// namespace it starts in, so the MobileSocket must live in a process of its own there.
// It downloads `down` xorshift octets (the server's DOWN_SEED stream) while uploading `up`
// (UP_SEED), moves between its two addresses at the given read offsets (hard: the old
// link is set down first, `ip link set down`, and back up after the move), tries two
// forged RECONNECTs, and prints one JSON line: digests, counts, the moves, the forgeries.
import net from 'node:net'
import crypto from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { pathToFileURL } from 'node:url'

const cfg = JSON.parse(process.argv[2])
const { MobileSocket, buildReconnect, parseReconnectReply } = await import(pathToFileURL(cfg.dist).href)

function gen(seed) {
  let x = seed | 0
  const chunk = Buffer.alloc(1 << 16)
  return () => {
    for (let i = 0; i < chunk.length; i += 4) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; chunk.writeInt32LE(x | 0, i) }
    return chunk
  }
}

// stdout is a pipe (asynchronous): exit only once the line is written.
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n', () => process.exit(o.error ? 2 : 0))
setTimeout(() => out({ error: `timed out after ${cfg.timeoutMs} ms`, received, sent, moves, ended, flushed, nextMove, moving, open: ms.isOpen, writableEnded: ms.writableEnded }), cfg.timeoutMs)

const t0 = performance.now()
let cur = 0
const ms = new MobileSocket({
  proxy: { host: cfg.proxy[0], port: cfg.port }, target: { host: cfg.server, port: cfg.serverPort },
  localAddress: cfg.local[0], auth: cfg.auth, retries: 8, retryDelayMs: 50,
})
const rh = crypto.createHash('sha256')
const sh = crypto.createHash('sha256')
let received = 0
let sent = 0
let ended = false
let flushed = false
const moves = []
const forged = []
ms.on('data', (d) => {
  rh.update(d)
  received += d.length
  if (started && !waiting && sent < cfg.up) pump()
  step()
})
ms.on('end', () => { ended = true; finish() })
ms.on('finish', () => { flushed = true; finish() })
ms.on('error', (e) => out({ error: String(e), received, sent, moves }))
ms.on('reconnect', (i) => { moves[moves.length - 1].info = i })

// Upload with backpressure, paced by the download (so octets are in flight both ways at
// every move); the FIN waits until every move is done (a FIN makes the session unmovable).
const next = gen(cfg.upSeed)
let waiting = false
const pump = () => {
  waiting = false
  while (sent < cfg.up) {
    if (sent > (received / cfg.down) * cfg.up + (1 << 20)) return
    const c = next()
    const part = c.subarray(0, Math.min(c.length, cfg.up - sent))
    sh.update(part)
    sent += part.length
    if (!ms.write(Buffer.from(part))) {
      waiting = true
      return ms.once('drain', pump)
    }
  }
  finish()
}
ms.once('connect', pump)
let started = false
ms.once('connect', () => { started = true })

let moving = false
let nextMove = 0
function step() {
  if (moving || nextMove >= cfg.moves.length || received < cfg.moves[nextMove].at) return
  const m = cfg.moves[nextMove++]
  moving = true
  const from = cur
  const to = 1 - cur
  if (m.kind === 'hard') execFileSync('ip', ['link', 'set', 'dev', cfg.devs[from], 'down'])
  const rec = { kind: m.kind, at: received, from: cfg.local[from], to: cfg.local[to] }
  moves.push(rec)
  const started = performance.now()
  ms.reconnect({ localAddress: cfg.local[to], proxyHost: cfg.proxy[to] }).then(async () => {
    rec.wallMs = performance.now() - started
    rec.localAddress = ms.localAddress
    cur = to
    if (m.kind === 'hard') execFileSync('ip', ['link', 'set', 'dev', cfg.devs[from], 'up'])
    if (forged.length === 0) await forge()
    moving = false
    step()
    finish()
  }, (e) => out({ error: `move ${moves.length}: ${e}`, received, sent, moves }))
}

/** Two forged RECONNECTs on the current link: a random identifier, and ours as another user. */
async function forge() {
  const one = (user, pass, id) => new Promise((resolve) => {
    const s = net.connect({ host: cfg.proxy[cur], port: cfg.port, localAddress: cfg.local[cur] })
    let buf = Buffer.alloc(0)
    s.on('data', (d) => { buf = Buffer.concat([buf, d]) })
    s.on('error', () => {})
    s.on('close', () => {
      const r = parseReconnectReply(buf.subarray(4))
      resolve(r.kind === 'ok' ? r.value.rep : `bad reply ${buf.toString('hex')}`)
    })
    const u = Buffer.from(user)
    const p = Buffer.from(pass)
    s.write(Buffer.concat([Buffer.from([5, 1, 2, 1, u.length]), u, Buffer.from([p.length]), p, buildReconnect({ id, dataRead: 0, dataWritten: 0 })]))
  })
  forged.push(await one(cfg.auth.user, cfg.auth.password, crypto.randomBytes(16)))
  forged.push(await one(cfg.forger.user, cfg.forger.password, ms.id))
}

let finished = false
function finish() {
  if (finished) return
  if (received === cfg.down && sent === cfg.up && nextMove >= cfg.moves.length && !moving && !ms.writableEnded) ms.end()
  if (!ended || !flushed) return
  finished = true
  out({ received, rdigest: rh.digest('hex'), sent, sdigest: sh.digest('hex'), ms: performance.now() - t0, moves, forged, dataRead: ms.dataRead, dataWritten: ms.dataWritten })
}
