/**
 * TAP driver: Linux TAP interfaces as pathsplice devices (native addon, batches, virtio-net
 * offloads), plus network-namespace helpers for real Linux peers.
 *
 * Read first: Linux `Documentation/networking/tuntap.rst`, ip-netns(8), virtio spec §5.1.6.
 * @module
 */
export { TapDevice, TAP_DROP_REASONS, tapOpenError, txDropReason, loadNative } from './tap-device.js'
export type { TapOptions, TapDropReason, TapInfo } from './tap-device.js'
export { Netns, CommandError, moveLink, run, uniqueName, netAdminUnavailable, haveTool, sweepStaleNamespaces } from './netns.js'
export type { RunOptions, RunResult } from './netns.js'
