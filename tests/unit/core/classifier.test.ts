import t from 'tap'
import { get16 } from '../../../core/bytes.js'
import { Classifier, FieldDemux, type ClassifierNode } from '../../../core/classifier.js'
import { Msg } from '../../../core/msg.js'
import { Path, type PathEnd } from '../../../core/path.js'
import { FlowTable } from '../../../core/flow-table.js'
import { get32 } from '../../../core/bytes.js'

function frame(etherType: number, proto = 0, src = 0, dst = 0, sport = 0, dport = 0): Msg {
  const b = new Uint8Array(14 + 20 + 20)
  b[12] = etherType >> 8
  b[13] = etherType & 0xff
  b[14] = 0x45
  b[14 + 9] = proto
  const dv = new DataView(b.buffer)
  dv.setUint32(14 + 12, src)
  dv.setUint32(14 + 16, dst)
  dv.setUint16(34, sport)
  dv.setUint16(36, dport)
  return Msg.from(b)
}

/** A 4-tuple node as the TCP module would contribute it. */
class Flows implements ClassifierNode {
  readonly name = 'TCP flow'
  readonly table = new FlowTable<PathEnd>()
  fallback: PathEnd | null = null
  classify(msg: Msg, off: number): PathEnd | null {
    const ip = off - 20
    const e = this.table.get(get32(msg.buf, ip + 12), get32(msg.buf, ip + 16), get32(msg.buf, off))
    return e ?? this.fallback
  }
  describe(indent: string, out: string[]): void {
    out.push(`${indent}${this.name} (${this.table.size} flows)${this.fallback ? ` default -> ${this.fallback.name}` : ''}`)
  }
}

t.test('demux tree: ETH type, IP protocol, 4-tuple, defaults at each level', async t => {
  const arp = new Path([], { name: 'arp' })
  const icmp = new Path([], { name: 'icmp' })
  const conn = new Path([], { name: 'conn' })
  const listener = new Path([], { name: 'listen' })
  const other = new Path([], { name: 'other' })
  const ipProto = new FieldDemux('IP protocol', { key: (b, o, end) => (o + 20 <= end ? b[o + 9]! : -1), next: (b, o) => o + (b[o]! & 0xf) * 4 })
  const eth = new FieldDemux('ETH type', { key: (b, o, end) => (o + 14 <= end ? get16(b, o + 12) : -1), next: (_b, o) => o + 14, format: k => `0x${k.toString(16).padStart(4, '0')}` })
  const flows = new Flows()
  flows.table.set(0x0a000002, 0x0a000001, (4242 << 16) | 80, conn.ends[0])
  flows.fallback = listener.ends[0]
  eth.set(0x0806, arp.ends[0]).set(0x0800, ipProto)
  ipProto.set(1, icmp.ends[0]).set(6, flows)
  const c = new Classifier('eth0', eth, other.ends[0])

  t.equal(c.classify(frame(0x0806)), arp.ends[0])
  t.equal(c.classify(frame(0x0800, 1)), icmp.ends[0])
  t.equal(c.classify(frame(0x0800, 6, 0x0a000002, 0x0a000001, 4242, 80)), conn.ends[0])
  t.equal(c.classify(frame(0x0800, 6, 0x0a000002, 0x0a000001, 4243, 80)), listener.ends[0], 'unknown flow -> listener')
  t.equal(c.classify(frame(0x0800, 17)), other.ends[0], 'unknown protocol -> classifier default')
  t.equal(c.classify(frame(0x86dd)), other.ends[0], 'unknown type -> classifier default')
  t.equal(c.classify(Msg.from(new Uint8Array(6))), other.ends[0], 'runt frame -> default, no throw')
  ipProto.setDefault(icmp.ends[0])
  t.equal(c.classify(frame(0x0800, 17)), icmp.ends[0], 'level default wins over classifier default')
  t.same(c.stats(), { matched: 5, defaulted: 3, unmatched: 0 })
  c.fallback = null
  t.equal(c.classify(frame(0x86dd)), null)
  t.equal(c.stats().unmatched, 1)
  t.equal(
    c.describe(),
    [
      'classifier eth0',
      '  ETH type',
      '    0x0806 -> arp.end0',
      '    0x0800',
      '      IP protocol',
      '        1 -> icmp.end0',
      '        6',
      '          TCP flow (1 flows) default -> listen.end0',
      '        default -> icmp.end0',
      '  otherwise drop',
    ].join('\n'),
  )
  t.ok(eth.delete(0x0806))
  t.equal(eth.get(0x0806), undefined)
})

t.test('a level remembers its last key, and forgets it when the table changes', async t => {
  const a = new Path([], { name: 'a' })
  const b = new Path([], { name: 'b' })
  const dflt = new Path([], { name: 'default' })
  const ipProto = new FieldDemux('IP protocol', { key: (bf, o, end) => (o + 20 <= end ? bf[o + 9]! : -1), next: (bf, o) => o + (bf[o]! & 0xf) * 4 })
  const eth = new FieldDemux('ETH type', { key: (bf, o, end) => (o + 14 <= end ? get16(bf, o + 12) : -1), next: (_b, o) => o + 14 })
  eth.set(0x0800, ipProto)
  ipProto.set(6, a.ends[0])
  const c = new Classifier('eth0', eth, dflt.ends[0])
  const tcp = frame(0x0800, 6)
  t.equal(c.classify(tcp), a.ends[0], 'first lookup')
  t.equal(c.classify(tcp), a.ends[0], 'remembered')
  ipProto.set(6, b.ends[0])
  t.equal(c.classify(tcp), b.ends[0], 'set() replaces the remembered target')
  ipProto.delete(6)
  t.equal(c.classify(tcp), dflt.ends[0], 'delete() forgets it: the default again')
  // A miss is remembered too, until an entry appears.
  t.equal(c.classify(frame(0x0800, 17)), dflt.ends[0])
  ipProto.set(17, a.ends[0])
  t.equal(c.classify(frame(0x0800, 17)), a.ends[0], 'a key that missed is found once set')
  // A deeper node that claims nothing falls back to the level's default, remembered or not.
  ipProto.setDefault(b.ends[0])
  t.equal(c.classify(frame(0x0800, 1)), b.ends[0])
  t.equal(c.classify(frame(0x0800, 1)), b.ends[0])
  // Alternating keys (the memo is one entry) still find each its own target.
  eth.set(0x0806, dflt.ends[0])
  for (let i = 0; i < 4; i++) {
    t.equal(c.classify(frame(0x0806)), dflt.ends[0])
    t.equal(c.classify(frame(0x0800, 17)), a.ends[0])
  }
  t.equal(c.classify(Msg.from(new Uint8Array(6))), dflt.ends[0], 'a runt (key -1) is never taken for the remembered key')
})
