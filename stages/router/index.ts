/**
 * ROUTER: IPv4 forwarding between the two interfaces of an IP router path.
 *
 * Read first:
 * - RFC 1812 §5.2-5.3 (forwarding: validation, TTL, martians, broadcasts), §4.3 (ICMP errors)
 * - RFC 1624 (incremental checksum update for the TTL decrement)
 * - RFC 791 §3.2 (fragmentation), RFC 1191 (fragmentation needed with next-hop MTU)
 * - RFC 2644 (directed broadcasts are not forwarded)
 * @module
 */
export * from './stage.js'
