/**
 * FWD and IP/FWD: the stages of a spliced TCP connection.
 *
 * Read first: Scout TCP forwarder §III-C and §IV (papers/scout-*), IBM TCP Splice §3
 * (papers/tcp-splice-application-layer-proxy.txt), RFC 1624 (incremental checksum),
 * RFC 7323 (timestamps, window scale), RFC 2018 (SACK), RFC 5961 (blind injection).
 * @module
 */
export { FwdDirection, FWD_DROP_REASONS, MIN_INJECTION_TOLERANCE, rewriteSegment, TsMode } from './rewrite.js'
export type { FwdDirectionConfig, FwdDropReason, RewriteResult } from './rewrite.js'
export { FwdStage } from './stage.js'
export type { FwdConfig, FwdDirectionState, FwdEnd, FwdState, FwdTapDir } from './stage.js'
export { IpFwdStage } from './ipfwd.js'
export type { IpFwdConfig } from './ipfwd.js'
export { SharedIpFwdStage } from './shared.js'
export type { SharedIpFwdConfig, TakenRow } from './shared.js'
export { DIR_WORDS, DirWord, FwdTable, packPorts, ROW_F64, ROW_WORDS, RowState, RowWord, scratchDirection } from './shared-table.js'
export { PreliminaryFwdStage } from './preliminary.js'
export { findTimestamps } from './segment-edit.js'
export type { DrainingLeg, PreliminaryFwdConfig } from './preliminary.js'
export { RespliceFwdStage } from './resplice.js'
export type { RespliceFwdConfig, RespliceLeg } from './resplice.js'
