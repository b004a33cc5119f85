/**
 * TCP: a real TCP (state machine, reliable delivery, congestion control, SACK,
 * timestamps, window scaling) as pathsplice stages, with a socket-like API.
 *
 * Read first:
 * - RFC 9293 (TCP; §3.3.2 states, §3.8 data communication, §3.10 event processing)
 * - RFC 1122 §4.2 (host requirements: delayed ACK, Nagle, zero-window probing)
 * - RFC 6298 (retransmission timer), RFC 5681 (congestion control), RFC 6582 (NewReno),
 *   RFC 3042 (limited transmit), RFC 6928 (initial window)
 * - RFC 2018 (SACK), RFC 2883 (D-SACK), RFC 6675 (SACK-based loss recovery)
 * - RFC 7323 (window scaling, timestamps, PAWS)
 * - RFC 5961 (blind in-window attacks: challenge ACKs), RFC 6528 (ISN generation)
 * - RFC 6691 (MSS and options), RFC 6093 (urgent data: delivered inline)
 *
 * Files: `segment.ts` (header view, checked parse, TcpRepr), `options.ts` (robust option
 * parsing), `buffers.ts` (byte rings, out-of-order ranges, SACK scoreboard), `tcb.ts`
 * (the pure control block), `stage.ts` (the TCB as a stage), `module.ts` (listen table,
 * 4-tuple demux, backlogs, ISNs, connection paths), `socket.ts` (Duplex sockets, server).
 * @module
 */
export * from './options.js'
export * from './segment.js'
export * from './buffers.js'
export * from './tcb.js'
export * from './stage.js'
export * from './module.js'
export * from './socket.js'
