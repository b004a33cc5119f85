// Each example in examples/ runs (memory wires, virtual time) and does what it says.
import t from 'tap'
import { main as firewall } from '../../examples/socks5-firewall.js'
import { main as loadBalancer } from '../../examples/http-load-balancer.js'
import { main as l4 } from '../../examples/l4-proxy.js'
import { main as customStage } from '../../examples/custom-stage.js'
import { main as transparent } from '../../examples/transparent-proxy.js'

t.test('socks5-firewall: allowed and spliced, denied by rule', async t => {
  const r = await firewall(300_000, false)
  t.equal(r.allowedReply, 0, 'REP succeeded')
  t.equal(r.echoed, 300_000)
  t.ok(r.digestOk, 'echo digest matches')
  t.equal(r.deniedReply, 2, "REP X'02' for the denied destination")
  t.equal(r.splices, 1, 'the allowed session was spliced')
  t.match(r.splicedPath, /-> ipfwd#1 ->/, 'spliced to IP/FWD as configured')
})

t.test('http-load-balancer: routed by Host and path, keep-alive, bodies intact, spliced', async t => {
  const r = await loadBalancer(50_000, false)
  t.same(r.connections.map(c => c.map(e => [e.host + e.path, e.status, e.server, e.bodyOk])), [
    [['api.example/v1/users', 200, 8081, true], ['api.example/v1/orders', 200, 8081, true], ['api.example/v1/users?page=2', 200, 8081, true]],
    [['www.example/index.html', 200, 8083, true], ['img.example/logo.png', 200, 8083, true]],
    [['api.example/v1/health', 200, 8082, true]], // round-robin: the pool's second server
  ])
  // Every body is spliced and unspliced at its end, so the proxy parses each next request.
  t.equal(r.splices, 6, 'each of the six bodies was spliced')
  t.equal(r.unsplices, 6, 'and unspliced at its end')
})

t.test('l4-proxy: proxied (spliced after 1000 bytes) and routed transfers intact', async t => {
  const r = await l4(300_000, false)
  t.ok(r.proxiedOk, 'proxied digests')
  t.ok(r.routedOk, 'routed digests')
  t.equal(r.splices, 1)
  t.ok(r.routedFrames > 400, `router path carried ${r.routedFrames} frames`)
})

t.test('custom-stage: three hot swaps into a running router path, nothing lost', async t => {
  const r = await customStage(2_000_000, false)
  t.ok(r.intact, 'transfer digests match across the swaps')
  t.equal(r.paths.length, 3)
  t.match(r.paths[0], /eth#1\(0800\) -> count#1 -> router#2 ->/)
  t.match(r.paths[1], /eth#1\(0800\) -> count2#1 -> router#2 ->/)
  t.match(r.paths[2], /eth#1\(0800\) -> router#2 -> eth#2/)
  t.ok(r.countedByV1 > 0, `COUNT saw ${r.countedByV1} datagrams`)
  t.ok(r.packets[0] + r.packets[1] > r.countedByV1, 'COUNT2 took over COUNT\'s counts and added its own')
})

t.test('transparent-proxy: intercepted and spliced, routed unchanged, denied with a RST', async t => {
  const r = await transparent(300_000, false)
  t.ok(r.interceptedOk, 'intercepted transfer digests')
  t.equal(r.interceptedPeer, '10.0.1.1', 'the server saw the proxy on the intercepted connection')
  t.ok(r.routedOk, 'routed transfer digests')
  t.equal(r.routedPeer, '10.0.0.2', 'and the client itself on the routed one')
  t.equal(r.denied, 'reset', 'the denied destination got a RST')
  t.equal(r.accepted, 2, 'two connections intercepted (allowed and denied)')
  t.equal(r.splices, 1, 'the allowed one was spliced')
  t.match(r.splicedPath, /ipfwd/, 'to IP/FWD as configured')
})
