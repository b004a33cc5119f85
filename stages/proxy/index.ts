/**
 * PROXY: the stage where a proxy sees both TCP connections' byte streams, and the
 * session API proxy writers use: read, write, relay, splice (optionally after n more
 * bytes to the client), unsplice. The forwarder that runs sessions is in `paths/proxy`.
 *
 * Read first: Scout's TCP forwarder §III (paths, the PROXY stage, splicing), IBM's TCP
 * Splice for SOCKS §3 and the symmetric-splice thesis ch. 4-5 (the splice socket API).
 * @module
 */
export * from './session.js'
export * from './stage.js'
