// PcapLiveDevice logic with a stand-in for node_pcap's session: batching, copying out of
// the reused capture buffer, injection, counters, close; and the error when `pcap` is missing.
import t from 'tap'
import { EventEmitter } from 'node:events'
import { openLive, PcapLiveDevice, missingPcapError, loadPcapModule } from '../../../drivers/pcap/index.js'
import type { PcapModule, PcapSessionLike } from '../../../drivers/pcap/index.js'
import { framePool } from '../../../core/msg.js'
import type { Msg } from '../../../core/msg.js'

class FakeSession extends EventEmitter implements PcapSessionLike {
  link_type = 'LINKTYPE_ETHERNET'
  injected: Buffer[] = []
  closed = false
  failInject = false
  buf = Buffer.alloc(65535) // reused for every packet, like node_pcap's
  header = Buffer.alloc(16)
  inject(data: Buffer): void {
    if (this.failInject) throw new Error('inject failed')
    this.injected.push(Buffer.from(data))
  }
  stats(): { ps_recv: number; ps_drop: number; ps_ifdrop: number } {
    return { ps_recv: 0, ps_drop: 3, ps_ifdrop: 0 }
  }
  close(): void {
    this.closed = true
  }
  packet(bytes: Uint8Array, wireLen = bytes.length): void {
    this.buf.set(bytes)
    this.header.writeUInt32LE(bytes.length, 8)
    this.header.writeUInt32LE(wireLen, 12)
    this.emit('packet', { buf: this.buf, header: this.header })
  }
}

const frame = (i: number): Uint8Array => Uint8Array.from([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x88, 0xb5, i, ...new Array<number>(46).fill(i)])
const tick = (): Promise<void> => new Promise(r => setImmediate(r))

t.test('captured packets arrive in batches, copied out of the reused buffer', async t => {
  const s = new FakeSession()
  const dev = new PcapLiveDevice('lo', s, { batchSize: 3, ingress: 2 })
  t.equal(dev.name, 'lo')
  t.equal(dev.mtu, 65536, 'MTU from sysfs')
  t.equal(dev.mac.length, 6)
  const batches: number[][] = []
  dev.onReceive((b: Msg[], n: number) => {
    const ids: number[] = []
    for (let i = 0; i < n; i++) {
      ids.push(b[i]!.buf[b[i]!.off + 14]!)
      t.equal(b[i]!.ingress, 2)
      b[i]!.free()
    }
    batches.push(ids)
  })
  for (let i = 0; i < 5; i++) s.packet(frame(i))
  t.same(batches, [[0, 1, 2]], 'a full batch goes at once')
  await tick()
  t.same(batches, [[0, 1, 2], [3, 4]], 'the rest after the loop turn')
  s.packet(frame(9).subarray(0, 20), 60)
  await tick()
  const st = dev.stats()
  t.equal(st.rxFrames, 6)
  t.equal(st.rxBytes, 5 * frame(0).length + 20)
  t.equal(st.drops['truncated'], 1)
  t.equal(st.drops['pcap-kernel'], 3)
  dev.onReceive(null)
  s.packet(frame(1))
  await tick()
  t.equal(dev.stats().drops['no-handler'], 1)
})

t.test('send injects each frame; failures and sends after close are counted', async t => {
  const s = new FakeSession()
  const dev = new PcapLiveDevice('nonexistent0', s)
  t.equal(dev.mtu, 1500, 'defaults without sysfs')
  t.same([...dev.mac], [0, 0, 0, 0, 0, 0])
  const before = framePool.stats().inUse
  dev.send([framePool.allocFrom(frame(1)), framePool.allocFrom(frame(2))], 2)
  t.same(s.injected.map(b => b[14]), [1, 2])
  t.equal(framePool.stats().inUse, before, 'frames freed')
  s.failInject = true
  dev.send([framePool.allocFrom(frame(3))], 1)
  t.equal(dev.stats().drops['tx-error'], 1)
  s.packet(frame(4)) // pending when closed
  await dev.close()
  await dev.close()
  t.ok(s.closed)
  t.equal(dev.stats().drops['closed'], 1, 'pending capture dropped at close')
  dev.send([framePool.allocFrom(frame(5))], 1)
  t.equal(dev.stats().drops['closed'], 2)
  s.packet(frame(6)) // ignored after close
  t.equal(dev.stats().rxFrames, 0)
})

t.test('openLive: missing package, bad interface, wrong link type', async t => {
  const missing = (): Promise<PcapModule> => Promise.reject(missingPcapError(new Error("Cannot find package 'pcap'")))
  await t.rejects(openLive('eth0', { loader: missing }), { code: 'PS_ERR_DEVICE', message: /needs the optional npm package `pcap`.*npm install pcap.*Cannot find package/ })
  const throwing: PcapModule = {
    createSession: () => {
      throw new Error('No such device exists')
    },
  }
  await t.rejects(openLive('nope0', { loader: async () => throwing }), { message: /pcap: cannot capture on 'nope0': No such device exists/ })
  const s = new FakeSession()
  s.link_type = 'LINKTYPE_RAW'
  await t.rejects(openLive('tun0', { loader: async () => ({ createSession: () => s }) }), { message: /link type LINKTYPE_RAW/ })
  t.ok(s.closed, 'session closed on refusal')
  let opts: unknown
  const ok = new FakeSession()
  const dev = await openLive('lo', { loader: async () => ({ createSession: (_d, o) => ((opts = o), ok) }), filter: 'arp', promiscuous: true })
  t.match(opts, { filter: 'arp', promiscuous: true, buffer_timeout: 0 })
  await dev.close()
})

t.test('loadPcapModule loads the optional package when it is installed', async t => {
  try {
    const mod = await loadPcapModule()
    t.type(mod.createSession, 'function')
  } catch (err) {
    t.match((err as Error).message, /needs the optional npm package `pcap`/, 'or says how to install it')
  }
})
