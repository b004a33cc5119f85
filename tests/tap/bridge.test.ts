// A bridge of two TapDevices carries a kernel TCP transfer between two namespaces; the
// SHA-256 of the bytes is compared on both ends. Run without offloads (MTU frames), with
// IFF_VNET_HDR only (partial checksums: NEEDS_CSUM headers forwarded) and with
// IFF_VNET_HDR + TSO (64 KiB super-frames with their virtio-net headers forwarded).
import t from 'tap'
import { TapDevice, Netns, netAdminUnavailable } from '../../drivers/tap/index.js'
import type { Msg } from '../../core/msg.js'
import { digestClient, digestServer } from '../helpers/kernel-transfer.js'

const unavailable = netAdminUnavailable()
if (unavailable !== null) {
  t.plan(0, `TAP bridge tests skipped: ${unavailable}`)
} else {
  for (const mode of ['plain', 'vnet', 'tso'] as const) await bridgeTest(mode)
}

const SERVER = digestServer(20000)
const CLIENT = digestClient(20000, 0x12345678)

async function bridgeTest(mode: 'plain' | 'vnet' | 'tso'): Promise<void> {
  const tso = mode === 'tso'
  const vnetHdr = mode !== 'plain'
  const title = { plain: 'no offloads', vnet: 'VNET_HDR (checksum offload)', tso: 'VNET_HDR + TSO' }[mode]
  t.test(`kernel TCP across a TAP-to-TAP bridge, ${title}`, async t => {
    const nsA = await Netns.create('pb')
    t.teardown(() => nsA.delete())
    const nsB = await Netns.create('pb')
    t.teardown(() => nsB.delete())
    const a = TapDevice.open({ name: nsA.name, tso, vnetHdr })
    t.teardown(() => a.close())
    const b = TapDevice.open({ name: nsB.name, tso, vnetHdr })
    t.teardown(() => b.close())
    let maxFrame = 0
    let gsoFrames = 0
    let partialCsum = 0
    const forward = (to: TapDevice) => (batch: Msg[], n: number) => {
      for (let i = 0; i < n; i++) {
        const m = batch[i]!
        if (m.end - m.off > maxFrame) maxFrame = m.end - m.off
        if (m.vnet !== null && m.vnet.gsoType !== 0) gsoFrames++
        if (m.vnet !== null && (m.vnet.flags & 1) !== 0) partialCsum++
      }
      to.send(batch, n)
    }
    a.onReceive(forward(b))
    b.onReceive(forward(a))
    await nsA.adopt(a.name, { addr: '10.201.0.1/24' })
    await nsB.adopt(b.name, { addr: '10.201.0.2/24' })

    const server = nsB.spawn(process.execPath, ['-e', SERVER, '10.201.0.2'])
    await new Promise<void>((res, rej) => {
      server.stdout!.once('data', () => res())
      server.once('exit', code => rej(new Error(`server exited early (${code})`)))
    })
    const total = 24 << 20
    const started = performance.now()
    const { stdout } = await nsA.run(process.execPath, ['-e', CLIENT, '10.201.0.2', String(total)], { timeoutMs: 20_000 })
    const ms = performance.now() - started
    const r = JSON.parse(stdout) as { sent: number; digest: string; server: { bytes: number; digest: string } }
    t.equal(r.sent, total)
    t.equal(r.server.bytes, total, 'server received every byte')
    t.equal(r.server.digest, r.digest, 'SHA-256 matches on both ends')
    const sa = a.stats()
    const sb = b.stats()
    t.ok(sa.rxFrames > 0 && sb.rxFrames > 0, `frames both ways (A rx ${sa.rxFrames}, B rx ${sb.rxFrames})`)
    t.equal(sa.rxFrames, sb.txFrames + (sb.drops['tx-error'] ?? 0) + (sb.drops['tx-link-down'] ?? 0), 'everything A received went out of B')
    if (tso) {
      t.ok(maxFrame > 1514, `super-frames crossed the bridge (largest ${maxFrame} bytes)`)
      t.ok(gsoFrames > 0, `${gsoFrames} frames carried a GSO virtio-net header`)
    } else {
      t.ok(maxFrame <= 1514, `MTU-sized frames only (largest ${maxFrame} bytes)`)
      t.equal(gsoFrames, 0, 'no GSO frames')
    }
    if (vnetHdr) t.ok(partialCsum > 0, `${partialCsum} frames with a partial checksum (NEEDS_CSUM) crossed intact`)
    else t.equal(partialCsum, 0, 'no virtio-net headers without VNET_HDR')
    t.comment(`${mode}: ${(total / 2 ** 20).toFixed(0)} MiB in ${ms.toFixed(0)} ms (${((total * 8) / ms / 1e6).toFixed(2)} Gbit/s incl. process start)`)
  })
}
