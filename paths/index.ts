/**
 * Path builders: the host (ETH/ARP/IP/ICMP paths and the contract transports build on),
 * the IP router path, and the proxy forwarder with its splice engine.
 * @module
 */
export { Host, Interface } from './host.js'
export type { HostOptions, InterfaceOptions, NetStages, NetStagesOptions, PingOptions, PingResult } from './host.js'
export { IpRouter, createIpRouter } from './ip-router.js'
export type { IpRouterOptions, RouterSide, RouteSpec } from './ip-router.js'
export { ProxyForwarder } from './proxy/forwarder.js'
export type { ProxyForwarderOptions, ProxyForwarderStats, ProxyLayout, SharedKeep, Wiring } from './proxy/forwarder.js'
export { SpliceEngine } from './proxy/splice.js'
export { SharedIpFwdPath } from './proxy/shared-path.js'
export { Resplicer } from './proxy/resplice.js'
export type { ResplicerOptions, ResplicerStats } from './proxy/resplice.js'
export type { SpliceEngineOptions } from './proxy/splice.js'
export { spliceConfig, SPLICEABLE_STATES } from './splice/config.js'
export type { ConnectionAddrs, SpliceSide } from './splice/config.js'
