/**
 * IP: IPv4 header, routing, fragmentation, reassembly and ICMP.
 *
 * Read first:
 * - RFC 791 (IPv4; §3.2 fragmentation and reassembly), RFC 815 (reassembly bookkeeping)
 * - RFC 1122 §3.2 (host requirements: validation, reassembly timeout, ICMP rules)
 * - RFC 1812 §4.3, §5.2-5.3 (router requirements: forwarding, TTL, ICMP errors)
 * - RFC 792 (ICMP), RFC 1191 (path MTU discovery: fragmentation needed + next-hop MTU)
 * - RFC 1071 and RFC 1624 (checksum and its incremental update, in core/checksum.ts)
 * - RFC 5722 (overlapping fragments: applied to IPv4 here), RFC 6864 (the ID field)
 * @module
 */
export * from './header.js'
export * from './routes.js'
export * from './fragment.js'
export * from './reassembly.js'
export * from './reassembly-stage.js'
export * from './icmp.js'
export * from './icmp-stage.js'
export * from './stage.js'
export * from './demux.js'
