/**
 * ARP: IPv4 address resolution on Ethernet.
 *
 * Read first:
 * - RFC 826 (the protocol and its packet-reception algorithm)
 * - RFC 1122 §2.3.2 (cache timeouts, request rate, queueing while resolving)
 * - RFC 5227 §3 (gratuitous ARP announcements)
 * @module
 */
export * from './packet.js'
export * from './cache.js'
export * from './stage.js'
