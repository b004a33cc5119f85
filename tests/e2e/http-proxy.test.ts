/**
 * The HTTP proxy handler on the real forwarder (memory wire, our TCP at all ends, virtual
 * time): HTTP/1.1 keep-alive clients send several GET and POST requests with random
 * sizes on one connection each; Host routes them to two origin servers; each response
 * body is spliced, unspliced at its last byte (`unspliceAfterServerBytes`), and the next
 * request is read in control mode. Bodies are checked by digest, both ways.
 */
import t from 'tap'
import { parseIPv4 } from '../../core/bytes.js'
import { Random } from '../../core/random.js'
import { httpProxy, type HttpLogEvent } from '../../stages/proxy/handlers/http.js'
import { bodyFor, HttpKeepAliveClient, HttpOrigin, sha256, type HttpReq } from '../helpers/http-peers.js'
import { PROXY_A, PROXY_PORT, proxyNet, SERVER } from '../helpers/proxy-net.js'

const PORT_A = 8080
const PORT_B = 8081

const cases = [
  ...(['1-path', '2-path'] as const).flatMap(layout => (['fwd', 'ipfwd'] as const).map(mode => ({ layout, mode, lossy: false }))),
  { layout: '1-path', mode: 'fwd', lossy: true },
  { layout: '2-path', mode: 'ipfwd', lossy: true },
] as const

for (const { layout, mode, lossy } of cases) {
  t.test(`${layout} ${mode}${lossy ? ' (1% loss, reordering)' : ''}: keep-alive requests routed by Host, each response spliced and unspliced`, async t => {
    const seed = 4242 + (layout === '2-path' ? 1 : 0) + (mode === 'ipfwd' ? 2 : 0) + (lossy ? 10 : 0)
    t.comment(`seed ${seed}`)
    const rnd = new Random(seed)
    const log: HttpLogEvent[] = []
    const handler = httpProxy({
      routes: [
        { host: 'a.example', servers: [{ ip: SERVER, port: PORT_A }] },
        { host: 'b.example', servers: [{ ip: SERVER, port: PORT_B }] },
      ],
      mode,
      onLog: e => log.push(e),
    })
    const impair = lossy ? { impair1: { delayMs: 2, loss: 0.01, reorder: 0.01 }, impair2: { delayMs: 2, loss: 0.01, reorder: 0.01 } } : {}
    const net = proxyNet(handler, { seed, forwarder: { layout }, client: { mslMs: 100 }, server: { mslMs: 100 }, proxy: { mslMs: 100 }, ...impair })
    const origins: HttpOrigin[] = []
    net.tcpS.listen(PORT_A, c => origins.push(new HttpOrigin(c, 'A')))
    net.tcpS.listen(PORT_B, c => origins.push(new HttpOrigin(c, 'B')))
    const plan = (host: string): HttpReq[] => Array.from({ length: 6 }, (_, i) => ({
      host,
      // Mostly bodies longer than what comes with the head (spliced), some tiny ones.
      size: i === 2 ? rnd.int(0, 200) : rnd.int(2_000, 400_000),
      seed: rnd.int(1, 1 << 30),
      ...(i % 2 === 1 ? { body: new Random(seed + i).bytes(new Uint8Array(rnd.int(1, 50_000))) } : {}),
    }))
    const reqsA = plan('a.example')
    const reqsB = plan('b.example')
    const ca = new HttpKeepAliveClient(net.tcpC.connect(parseIPv4(PROXY_A), PROXY_PORT), reqsA)
    const cb = new HttpKeepAliveClient(net.tcpC.connect(parseIPv4(PROXY_A), PROXY_PORT), reqsB)
    const ok = net.sched.runUntil(() => (ca.done && cb.done) || ca.error !== null || cb.error !== null, 120_000)
    t.ok(ok && ca.done && cb.done, `both clients got all responses (${ca.responses.length}, ${cb.responses.length}; errors ${ca.error} ${cb.error})`)
    for (const [c, reqs, name] of [[ca, reqsA, 'A'], [cb, reqsB, 'B']] as const) {
      c.responses.forEach((r, i) => {
        const q = reqs[i]!
        t.equal(r.status, 200, `${name}#${i}: 200`)
        t.equal(r.server, name, `${name}#${i}: routed by Host to server ${name}`)
        t.equal(r.bodyLen, q.size, `${name}#${i}: ${q.size} body bytes`)
        t.equal(r.bodySha, sha256(bodyFor(q.size, q.seed)), `${name}#${i}: response body digest equal`)
        if (q.body) t.equal(r.gotSha, sha256(q.body), `${name}#${i}: POST body (${q.body.length} bytes) reached the server intact`)
      })
    }
    // The clients close after their last response; the last unsplice and the FINs finish.
    net.sched.runFor(3000)
    t.equal(net.fw.stats.closed, 2, 'both sessions closed after the clients did')
    t.equal(net.fw.stats.accepted, 2, 'one proxy connection per client: keep-alive')
    t.equal(origins.length, 2, 'one server connection per client')
    t.same(origins.map(o => o.requests).sort(), [6, 6], 'each server connection carried 6 requests')
    const spliced = log.filter(e => e.type === 'splice' && e.unspliceAfter !== null).length
    t.ok(spliced >= 8, `${spliced} response bodies were spliced with an unsplice point`)
    t.equal(net.fw.stats.splices, spliced, 'every one of them reached the final FWD')
    t.equal(net.fw.stats.unsplices, spliced, `and was unspliced at its end ${JSON.stringify(net.fw.stats)}`)
    t.equal(net.fw.stats.spliceFailures + net.fw.stats.unspliceFailures, 0, 'no failed splice or unsplice')
    t.same(log.filter(e => e.type === 'reject' || e.type === 'abort'), [], 'no rejects or aborts')
    // Unsplice at the response's end takes about one RTT (the client's ACK of the tail).
    // Under loss a lost tail segment or ACK costs its sender's RTO (1 s) now and then.
    const meanMs = net.fw.stats.unspliceMsTotal / spliced
    t.ok(meanMs < (lossy ? 1000 : 50), `mean unsplice ${meanMs.toFixed(1)} ms < ${lossy ? 1000 : 50} ms`)
  })
}
