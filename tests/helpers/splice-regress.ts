/**
 * Fixed scenarios that failed before the fixes of the splice-robustness work (found by
 * tests/e2e/splice-random.test.ts on the code of commit 76f6a40), kept as data so that a
 * change to the scenario generator cannot quietly change them. Several mechanisms of the
 * preliminary FWD overlap (the window clamp and holding both stop data beyond a window), so a
 * scenario may stay green when one of them alone is removed; the unit tests in
 * tests/unit/tcp/drain-recovery.test.ts pin the TCP-side causes one by one.
 */
import type { Scenario } from './splice-random.js'

/** One regression: what went wrong, and the scenario that showed it. */
export interface SpliceRegression {
  /** The failure before the fix and its root cause. */
  why: string
  /** Loss or corruption on a wire. */
  lossy: boolean
  scenario: Scenario
}

/** The regressions. */
export const SPLICE_REGRESSIONS: SpliceRegression[] = [
  {
    why: "lossless: stalled 2.9 s (one peer waited for a window or a retransmission timeout while the other TCB drained)",
    lossy: false,
    scenario: { seed: 381, layout: '1-path', mode: 'fwd', up: 23459, down: 776, when: 'late', midBytes: 739, midDir: 'down', inspect: false, banner: 0, impair1: { delayMs: 5}, impair2: { delayMs: 6}, client: { sack: false, timestamps: true, windowScaling: false, noDelay: false, delayedAckMs: 40, rcvBuf: 262144, sndBuf: 262144, mss: 1089, minRtoMs: 200, strictTimestamps: false}, proxy: { sack: true, timestamps: true, windowScaling: true, noDelay: false, delayedAckMs: 40, rcvBuf: 262144, sndBuf: 262144, minRtoMs: 200, strictTimestamps: false}, server: { sack: true, timestamps: false, windowScaling: true, noDelay: true, delayedAckMs: 40, rcvBuf: 4456, sndBuf: 262144, mss: 659, minRtoMs: 200, strictTimestamps: false}, mirror: false, teardown: 'fin', rstAt: 141, wrap: true},
  },
  {
    why: "lossless: the client's last data never reached the server; the session stayed spliced forever",
    lossy: false,
    scenario: { seed: 945, layout: '2-path', mode: 'ipfwd', up: 74423, down: 1571, when: 'late', midBytes: 600, midDir: 'down', inspect: false, banner: 0, impair1: { delayMs: 5}, impair2: { delayMs: 4, jitterMs: 2, reorder: 0.04728523751255125, reorderDelayMs: 1, duplicate: 0.012749840179458261}, client: { sack: false, timestamps: true, windowScaling: false, noDelay: false, delayedAckMs: 40, rcvBuf: 10859, sndBuf: 262144, minRtoMs: 200, strictTimestamps: false}, proxy: { sack: true, timestamps: false, windowScaling: false, noDelay: true, delayedAckMs: 0, rcvBuf: 22220, sndBuf: 262144, minRtoMs: 200, strictTimestamps: false}, server: { sack: true, timestamps: true, windowScaling: true, noDelay: false, delayedAckMs: 40, rcvBuf: 39121, sndBuf: 53457, mss: 825, minRtoMs: 200, strictTimestamps: false}, mirror: true, teardown: 'fin', rstAt: 51704, wrap: false},
  },
  {
    why: "lossless, RST from the client during the drain: the old TCB took the RST (an exact match), ended the splice and the RST was never passed on: the server never learnt of it",
    lossy: false,
    scenario: { seed: 531, layout: '1-path', mode: 'ipfwd', up: 252500, down: 76300, when: 'late', midBytes: 46020, midDir: 'down', inspect: true, banner: 216, impair1: { delayMs: 9}, impair2: { delayMs: 4, jitterMs: 1, reorder: 0.03498796322382987, reorderDelayMs: 3, duplicate: 0.018190777797717602}, client: { sack: true, timestamps: false, windowScaling: true, noDelay: false, delayedAckMs: 0, rcvBuf: 10014, sndBuf: 11789, minRtoMs: 200, strictTimestamps: false}, proxy: { sack: true, timestamps: true, windowScaling: false, noDelay: false, delayedAckMs: 40, rcvBuf: 262144, sndBuf: 42841, minRtoMs: 200, strictTimestamps: false}, server: { sack: true, timestamps: false, windowScaling: true, noDelay: false, delayedAckMs: 40, rcvBuf: 40652, sndBuf: 34862, minRtoMs: 200, strictTimestamps: false}, mirror: false, teardown: 'rst-client', rstAt: 16411, wrap: false},
  },
  {
    why: "lossy: the splice hung in 'splicing' until the server timed out (the peer kept refusing the old TCB's segments)",
    lossy: true,
    scenario: { seed: 970, layout: '1-path', mode: 'ipfwd', up: 296777, down: 194778, when: 'mid', midBytes: 31458, midDir: 'down', inspect: false, banner: 0, impair1: { delayMs: 2, jitterMs: 3, reorder: 0.03875268584815786, reorderDelayMs: 1, duplicate: 0.019926042433362455, loss: 0.028024662053212523, corrupt: 0.00915977495489642}, impair2: { delayMs: 2}, client: { sack: true, timestamps: true, windowScaling: true, noDelay: false, delayedAckMs: 0, rcvBuf: 262144, sndBuf: 262144, minRtoMs: 200, strictTimestamps: false}, proxy: { sack: true, timestamps: true, windowScaling: true, noDelay: true, delayedAckMs: 40, rcvBuf: 37002, sndBuf: 262144, minRtoMs: 200, strictTimestamps: false}, server: { sack: true, timestamps: true, windowScaling: false, noDelay: true, delayedAckMs: 40, rcvBuf: 262144, sndBuf: 262144, minRtoMs: 200, strictTimestamps: false}, mirror: true, teardown: 'fin', rstAt: 241358, wrap: false},
  },
  {
    why: "lossy; the client's data sent while its persist timer ran had no retransmission timer: a loss was never recovered (TCP, found through the splice's window clamp)",
    lossy: true,
    scenario: { seed: 712, layout: '2-path', mode: 'fwd', up: 53931, down: 971, when: 'mid', midBytes: 12790, midDir: 'up', inspect: true, banner: 0, impair1: { delayMs: 7, jitterMs: 1, reorder: 0.004863618267700077, reorderDelayMs: 7, duplicate: 0.014403191842138766, loss: 0.007474455193150788, corrupt: 0.006774700738023966}, impair2: { delayMs: 4, jitterMs: 0, reorder: 0.011926185805350542, reorderDelayMs: 9, duplicate: 0.008241370115429162, loss: 0.018157885051332413, corrupt: 0.004398362529464066}, client: { sack: false, timestamps: true, windowScaling: true, noDelay: true, delayedAckMs: 40, rcvBuf: 41596, sndBuf: 262144, minRtoMs: 200, strictTimestamps: false}, proxy: { sack: true, timestamps: false, windowScaling: true, noDelay: false, delayedAckMs: 40, rcvBuf: 5064, sndBuf: 32424, mss: 993, minRtoMs: 200, strictTimestamps: false}, server: { sack: true, timestamps: true, windowScaling: true, noDelay: false, delayedAckMs: 40, rcvBuf: 262144, sndBuf: 262144, mss: 1056, minRtoMs: 200, strictTimestamps: false}, mirror: true, teardown: 'fin', rstAt: 56, wrap: false},
  },
  {
    why: "lossy: the server was reset in the middle of a FIN run",
    lossy: true,
    scenario: { seed: 443, layout: '1-path', mode: 'ipfwd', up: 18817, down: 205203, when: 'late', midBytes: 4054, midDir: 'up', inspect: false, banner: 0, impair1: { delayMs: 7, jitterMs: 0, reorder: 0.03777043722802773, reorderDelayMs: 6, duplicate: 0.021292185473721473, loss: 0.02141418860759586, corrupt: 0.0007786983391270041}, impair2: { delayMs: 7, jitterMs: 3, reorder: 0.03863503076136113, reorderDelayMs: 3, duplicate: 0.001472927927970886, loss: 0.013938816336449234, corrupt: 0.009410626492463053}, client: { sack: true, timestamps: false, windowScaling: false, noDelay: true, delayedAckMs: 40, rcvBuf: 262144, sndBuf: 262144, mss: 1361, minRtoMs: 200, strictTimestamps: false}, proxy: { sack: true, timestamps: true, windowScaling: false, noDelay: false, delayedAckMs: 40, rcvBuf: 262144, sndBuf: 262144, minRtoMs: 200, strictTimestamps: false}, server: { sack: true, timestamps: false, windowScaling: true, noDelay: false, delayedAckMs: 40, rcvBuf: 51692, sndBuf: 262144, minRtoMs: 200, strictTimestamps: false}, mirror: true, teardown: 'fin', rstAt: 0, wrap: false},
  },
  {
    why: "lossless: the client's ACK of the server's FIN rode on a retransmission the server refused as old data; the FWD then dropped the FIN's retransmissions while it lingered (3 s stall, then a reset)",
    lossy: false,
    scenario: { seed: 3002985, layout: '1-path', mode: 'fwd', up: 33483, down: 13633, when: 'answer', midBytes: 10720, midDir: 'down', inspect: false, banner: 0, impair1: { delayMs: 6, jitterMs: 1, reorder: 0.045248031895607714, reorderDelayMs: 4, duplicate: 0.004637074784841389}, impair2: { delayMs: 3, jitterMs: 1, reorder: 0.03897360691335053, reorderDelayMs: 6, duplicate: 0.02225631489884108}, client: { sack: true, timestamps: true, windowScaling: false, noDelay: true, delayedAckMs: 0, rcvBuf: 262144, sndBuf: 262144, minRtoMs: 200, strictTimestamps: false}, proxy: { sack: true, timestamps: true, windowScaling: true, noDelay: false, delayedAckMs: 40, rcvBuf: 262144, sndBuf: 23869, minRtoMs: 200, strictTimestamps: false}, server: { sack: true, timestamps: true, windowScaling: true, noDelay: false, delayedAckMs: 0, rcvBuf: 262144, sndBuf: 262144, minRtoMs: 200, strictTimestamps: false}, mirror: true, teardown: 'fin', rstAt: 11255, wrap: true},
  },
  {
    why: "lossy, 485 kB down: the client's ACKs lagged what was sent to it (the old TCB's backlog plus data held for it) by more than the blind-injection tolerance and were refused: the drain never finished",
    lossy: true,
    scenario: { seed: 6000564, layout: '2-path', mode: 'ipfwd', up: 121531, down: 485138, when: 'mid', midBytes: 285924, midDir: 'down', inspect: false, banner: 0, impair1: { delayMs: 5, jitterMs: 2, reorder: 0.01827767237555236, reorderDelayMs: 9, duplicate: 0.028569986389484256, loss: 0.012687780379783362, corrupt: 0.00100375949870795}, impair2: { delayMs: 9}, client: { sack: false, timestamps: true, windowScaling: false, noDelay: false, delayedAckMs: 0, rcvBuf: 262144, sndBuf: 262144, minRtoMs: 200, strictTimestamps: false}, proxy: { sack: true, timestamps: false, windowScaling: true, noDelay: true, delayedAckMs: 40, rcvBuf: 262144, sndBuf: 262144, minRtoMs: 200, strictTimestamps: false}, server: { sack: true, timestamps: false, windowScaling: true, noDelay: false, delayedAckMs: 40, rcvBuf: 64263, sndBuf: 262144, mss: 972, minRtoMs: 200, strictTimestamps: false}, mirror: false, teardown: 'rst-client', rstAt: 329831, wrap: false},
  },
]
