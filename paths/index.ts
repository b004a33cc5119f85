/**
 * Path builders: the host (ETH/ARP/IP/ICMP paths and the contract transports build on)
 * and the IP router path.
 * @module
 */
export { Host, Interface } from './host.js'
export type { HostOptions, InterfaceOptions, NetStages, NetStagesOptions, PingOptions, PingResult } from './host.js'
export { IpRouter, createIpRouter } from './ip-router.js'
export type { IpRouterOptions, RouterSide, RouteSpec } from './ip-router.js'
