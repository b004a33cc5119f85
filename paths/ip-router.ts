/**
 * The IP router path, the baseline of every benchmark (Scout's "IP router" row):
 *
 * ```
 *   devA ─▶ classifier A ─not ours─▶ end 0 ┌───────┐  ┌────────┐  ┌───────┐ end 1 ─▶ devB
 *                                          │ eth#1 │─▶│router#1│─▶│ eth#2 │
 *   devA ◀──────────────────────── end 0 ◀─│ up=F  │◀─│        │◀─│ up=B  │◀─ end 1 ◀─ classifier B ◀─ devB
 *                                          └───────┘  └────────┘  └───────┘
 * ```
 * dev -> ETH -> IP(route) -> ETH -> dev: ETH pops 14 bytes, ROUTER validates, looks up
 * the route, decrements the TTL with an incremental checksum update and picks the next
 * hop, ETH pushes 14 bytes with the next hop's MAC. No stage allocates for a datagram
 * forwarded whole. The router is also a {@link Host} on both links: it answers ARP and
 * pings to its own addresses, resolves next hops, and sources ICMP errors.
 * @module
 */
import type { Device } from '../core/device.js'
import { Path } from '../core/path.js'
import type { Scheduler } from '../core/scheduler.js'
import { Dir } from '../core/stage.js'
import { EthStage } from '../stages/eth/stage.js'
import type { Route } from '../stages/ip/routes.js'
import type { ReassemblerOptions } from '../stages/ip/reassembly.js'
import { RouterStage, type IcmpRateLimit } from '../stages/router/stage.js'
import { Host, type Interface, type InterfaceOptions } from './host.js'

/** One side of the router. */
export interface RouterSide extends Omit<InterfaceOptions, 'address'> {
  /** The device. */
  device: Device
  /** The router's address on this side, e.g. `10.0.1.254/24`. */
  address: string
}

/** A route of an {@link IpRouter} (see {@link Host.addRoute}). */
export interface RouteSpec {
  /** Destination prefix, e.g. `172.16.0.0/12`. */
  cidr: string
  /** Gateway on a connected network. */
  via?: string
  /** Interface name. */
  dev?: string
  /** Preference among equal prefixes (lower wins). */
  metric?: number
}

/** Options of an {@link IpRouter}. */
export interface IpRouterOptions {
  /** Name (default `router`). */
  name?: string
  /** Side A (end 0) and side B (end 1). */
  sides: readonly [RouterSide, RouterSide]
  /** Extra routes beyond the two connected networks. */
  routes?: readonly RouteSpec[]
  /** ICMP error rate limit (RFC 1812 §4.3.2.8). */
  icmpRate?: IcmpRateLimit
  /** Reassembly limits for datagrams addressed to the router itself. */
  reassembly?: ReassemblerOptions
}

/** A two-interface IPv4 router built around one IP router path. */
export class IpRouter {
  /** The router's own host (ARP, ICMP, addresses, routing table). */
  readonly host: Host
  /** The forwarding path: `[ETH, ROUTER, ETH]`. */
  readonly path: Path
  /** Its ROUTER stage. */
  readonly router: RouterStage<Interface>
  /** Interfaces A (end 0) and B (end 1). */
  readonly sides: readonly [Interface, Interface]

  /** Builds the router; bad addresses or routes throw a `ConfigError` (`PS_ERR_CONFIG`). */
  constructor(scheduler: Scheduler, opts: IpRouterOptions) {
    const name = opts.name ?? 'router'
    this.host = new Host(scheduler, { name, ...(opts.reassembly ? { reassembly: opts.reassembly } : {}) })
    const [sa, sb] = opts.sides
    const a = this.host.addInterface(sa.device, sa)
    const b = this.host.addInterface(sb.device, sb)
    this.sides = [a, b]
    for (const r of opts.routes ?? []) this.host.addRoute(r.cidr, r)
    this.router = new RouterStage<Interface>({
      routes: this.host.routes, sides: this.sides, clock: scheduler.clock, ...(opts.icmpRate ? { icmpRate: opts.icmpRate } : {}),
    })
    this.path = new Path(
      [new EthStage({ mac: a.mac, arp: a.arp, up: Dir.Forward }), this.router, new EthStage({ mac: b.mac, arp: b.arp, up: Dir.Backward })],
      { name: `${name}/forward` },
    )
    this.path.connect(0, a.device).connect(1, b.device)
    scheduler.adopt(this.path)
    this.host.attached.add(this.path)
    // Datagrams not addressed to the router enter the path at the end facing their device.
    a.ipv4.forward = this.path.ends[0]
    b.ipv4.forward = this.path.ends[1]
  }

  /** Adds a route (see {@link Host.addRoute}). */
  addRoute(cidr: string, opts: { via?: string; dev?: string; metric?: number }): Route<Interface> {
    return this.host.addRoute(cidr, opts)
  }

  /** The router as text: interfaces, routes, ARP tables, classifiers, paths. */
  describe(): string {
    return this.host.describe()
  }

  /** Closes the path and the host's paths (devices stay open). */
  close(): void {
    this.sides[0].ipv4.forward = null
    this.sides[1].ipv4.forward = null
    this.host.close()
  }
}

/** Builds an {@link IpRouter}. */
export function createIpRouter(scheduler: Scheduler, opts: IpRouterOptions): IpRouter {
  return new IpRouter(scheduler, opts)
}
