import t from 'tap'
import { get16, get32, set16, set32, parseIPv4, formatIPv4, parseMac, formatMac } from '../../../core/bytes.js'

t.test('16- and 32-bit fields round-trip big-endian', async t => {
  const b = new Uint8Array(8)
  set16(b, 1, 0xabcd)
  t.same([...b.subarray(1, 3)], [0xab, 0xcd])
  t.equal(get16(b, 1), 0xabcd)
  set32(b, 4, 0xdeadbeef)
  t.equal(get32(b, 4), 0xdeadbeef)
})

t.test('addresses parse and format', async t => {
  t.equal(formatIPv4(parseIPv4('10.1.2.254')), '10.1.2.254')
  t.throws(() => parseIPv4('10.1.2'), /bad IPv4 address '10.1.2'/)
  t.throws(() => parseIPv4('10.1.2.256'), /bad IPv4/)
  t.equal(formatMac(parseMac('02:00:0a:0B:00:01')), '02:00:0a:0b:00:01')
  t.throws(() => parseMac('02:00'), /bad MAC/)
})
