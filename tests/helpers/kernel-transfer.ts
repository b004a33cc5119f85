// Programs run with `node -e` inside a test's network namespace, as the kernel-side ends
// of a TCP transfer whose SHA-256 digest is compared on both ends.

/** Receiver: `node -e SRC <listenAddr>`; accepts one connection on port 5001, hashes everything, answers with JSON {bytes, digest}. */
export function digestServer(timeoutMs: number): string {
  return `
const net = require('node:net'), crypto = require('node:crypto');
const srv = net.createServer(s => {
  const h = crypto.createHash('sha256'); let n = 0;
  s.on('data', d => { h.update(d); n += d.length });
  s.on('end', () => { s.end(JSON.stringify({ bytes: n, digest: h.digest('hex') })); srv.close() });
});
srv.listen(5001, process.argv[1], () => console.log('listening'));
setTimeout(() => process.exit(3), ${timeoutMs}).unref();`
}

/**
 * Sender: `node -e SRC <serverAddr> <bytes>`; sends deterministic pseudo-random bytes
 * (xorshift from `seed`) to port 5001 and prints JSON {sent, digest, server}.
 */
export function digestClient(timeoutMs: number, seed: number): string {
  return `
const net = require('node:net'), crypto = require('node:crypto');
const total = Number(process.argv[2]); const chunk = Buffer.alloc(1 << 16);
let x = ${seed >>> 0};
const h = crypto.createHash('sha256'); let sent = 0;
const s = net.connect(5001, process.argv[1], () => {
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
let reply = '';
s.on('data', d => (reply += d));
s.on('end', () => console.log(JSON.stringify({ sent, digest: h.digest('hex'), server: JSON.parse(reply) })));
setTimeout(() => process.exit(3), ${timeoutMs}).unref();`
}
