/**
 * ETH: Ethernet II framing.
 *
 * Read first:
 * - IEEE 802.3 clause 3 (MAC frame format), RFC 894 (IPv4 over Ethernet)
 * - IEEE 802.1Q (VLAN tags: counted and dropped here, deliberately)
 * @module
 */
export * from './header.js'
export * from './stage.js'
export * from './demux.js'
