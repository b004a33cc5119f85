/**
 * Kernel-side programs (run with `node -e` inside a network namespace) that move seeded
 * bytes both ways over one TCP connection and print SHA-256 digests of what they sent and
 * received: the Linux ends of `pathsplice demo --tap` and of the kernel proxy tests.
 * @module
 */

/** Seed of the xorshift stream the kernel server sends (the download). */
export const DOWN_SEED = 0x2545f491
/** Seed of the xorshift stream the kernel client sends (the upload). */
export const UP_SEED = 0x9e3779b9

/** Shared by the kernel programs: the xorshift32 stream of tcp-kernel.ts `xorshiftFill`, written with backpressure and hashed. */
const GEN = `
function gen(seed) {
  let x = seed | 0; const chunk = Buffer.alloc(1 << 16);
  return () => { for (let i = 0; i < chunk.length; i += 4) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; chunk.writeInt32LE(x | 0, i) } return chunk };
}
function pumpOut(s, total, seed, h, done) {
  const next = gen(seed); let sent = 0;
  const pump = () => {
    while (sent < total) {
      const c = next(); const part = c.subarray(0, Math.min(c.length, total - sent));
      h.update(part); sent += part.length;
      if (!s.write(part)) return s.once('drain', pump);
    }
    s.end(); done(sent);
  };
  pump();
}`

/**
 * Kernel-side server: `node -e SRC <addr> <port> <downBytes> <timeoutMs>`. Accepts ONE
 * connection; at once starts sending `downBytes` xorshift bytes (seed DOWN_SEED) while
 * hashing everything it receives; prints one JSON line
 * {received, rdigest, sent, sdigest, endEpoch} once it has sent all and read the client's FIN.
 */
export const DUPLEX_SERVER = `
const net = require('node:net'), crypto = require('node:crypto');
${GEN}
const down = Number(process.argv[3]);
const srv = net.createServer({ allowHalfOpen: true }, s => {
  srv.close();
  const rh = crypto.createHash('sha256'), sh = crypto.createHash('sha256'); let received = 0, sent = -1, ended = false;
  const fin = () => { if (ended && sent >= 0) { console.log(JSON.stringify({ received, rdigest: rh.digest('hex'), sent, sdigest: sh.digest('hex'), endEpoch: Date.now() })); } };
  s.on('data', d => { rh.update(d); received += d.length });
  s.on('end', () => { ended = true; fin() });
  s.on('error', e => { console.log(JSON.stringify({ error: String(e) })); process.exit(2) });
  pumpOut(s, down, ${DOWN_SEED}, sh, n => { sent = n; fin() });
});
srv.listen(Number(process.argv[2]), process.argv[1], () => console.log('listening'));
setTimeout(() => process.exit(3), Number(process.argv[4])).unref();`

/**
 * Kernel-side client: `node -e SRC <addr> <port> <upBytes> <timeoutMs> [sequential]`.
 * Connects, sends `upBytes` xorshift bytes (seed UP_SEED) while hashing what it receives
 * (with `sequential`: only once the server's stream ended, so one direction flows at a
 * time); prints one JSON line {received, rdigest, sent, sdigest, ms, upMs, firstByteMs,
 * startEpoch, endEpoch} once it got the server's FIN (at `ms`, epoch `endEpoch`) and wrote
 * all its bytes (at `upMs`, into its socket buffer), then the socket closes.
 */
export const DUPLEX_CLIENT = `
const net = require('node:net'), crypto = require('node:crypto');
${GEN}
const up = Number(process.argv[3]);
const t0 = performance.now(), startEpoch = Date.now(); let first = -1, endEpoch = 0;
const rh = crypto.createHash('sha256'), sh = crypto.createHash('sha256'); let received = 0, sent = -1, ended = -1, upMs = -1;
const fin = () => { if (ended >= 0 && sent >= 0) console.log(JSON.stringify({ received, rdigest: rh.digest('hex'), sent, sdigest: sh.digest('hex'), ms: ended, upMs, firstByteMs: first, startEpoch, endEpoch })) };
const sequential = process.argv[5] === 'sequential';
const upload = () => pumpOut(s, up, ${UP_SEED}, sh, n => { sent = n; upMs = performance.now() - t0; fin() });
const s = net.connect({ port: Number(process.argv[2]), host: process.argv[1], allowHalfOpen: true }, () => { if (!sequential) upload() });
s.on('data', d => { if (first < 0) first = performance.now() - t0; rh.update(d); received += d.length });
s.on('error', e => { console.log(JSON.stringify({ error: String(e) })); process.exit(2) });
s.on('end', () => { ended = performance.now() - t0; endEpoch = Date.now(); if (sequential) upload(); fin() });
setTimeout(() => process.exit(3), Number(process.argv[4])).unref();`

/** What {@link DUPLEX_SERVER} and {@link DUPLEX_CLIENT} print. */
export interface DuplexReport {
  /** Bytes received. */
  received: number
  /** SHA-256 of what was received. */
  rdigest: string
  /** Bytes sent. */
  sent: number
  /** SHA-256 of what was sent. */
  sdigest: string
  /** Client: ms from start to the server's FIN. */
  ms?: number
  /** Client: ms from start until all its bytes were written. */
  upMs?: number
  /** Client: ms to the first byte received. */
  firstByteMs?: number
  /** Client: epoch ms at start. */
  startEpoch?: number
  /** Epoch ms at the end. */
  endEpoch?: number
  /** Set when the program failed. */
  error?: string
}

