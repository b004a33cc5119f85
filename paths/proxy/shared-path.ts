/**
 * The shared IP/FWD path of a forwarder (splice mode `ipfwd-shared`): one path per pair
 * of interfaces, built on the first splice that needs it, carrying every connection
 * spliced onto it as a row of its {@link SharedIpFwdStage}'s table.
 *
 * ```
 *   dev X ─▶ [ETH(X) ─▶ IPFWD-SHARED ─▶ ETH(Y)] ─▶ dev Y      (and back)
 *   classifier: TCP flow table miss ─▶ this path's claim: row found ─▶ the end facing the
 *               sender's interface (end 0 for A's segments unless the row is reversed)
 * ```
 * @module
 */
import { Path, type PathEnd } from '../../core/path.js'
import { Dir } from '../../core/stage.js'
import { EthStage } from '../../stages/eth/stage.js'
import { SharedIpFwdStage, type SharedIpFwdConfig } from '../../stages/fwd/shared.js'
import type { TcpFlowClaim, TcpModule } from '../../stages/tcp/module.js'
import type { Host, Interface } from '../host.js'

/** One shared IP/FWD path and its classifier claim. */
export class SharedIpFwdPath implements TcpFlowClaim {
  /** The path `[ETH(x), IPFWD-SHARED, ETH(y)]`. */
  readonly path: Path
  /** Its table stage. */
  readonly stage: SharedIpFwdStage
  /** The interface end 0 faces. */
  readonly x: Interface
  /** The interface end 1 faces (may be x). */
  readonly y: Interface
  private readonly host: Host
  private readonly tcp: TcpModule

  /** Builds the path, attaches both ends and registers the claim with `tcp`. */
  constructor(host: Host, tcp: TcpModule, x: Interface, y: Interface, cfg: SharedIpFwdConfig) {
    this.host = host
    this.tcp = tcp
    this.x = x
    this.y = y
    this.stage = new SharedIpFwdStage(cfg)
    this.path = new Path([
      new EthStage({ mac: x.mac, arp: x.arp, up: Dir.Forward }),
      this.stage,
      new EthStage({ mac: y.mac, arp: y.arp, up: Dir.Backward }),
    ], { name: `${host.name}/ipfwd-shared:${x.name}${x === y ? '' : `-${y.name}`}` })
    host.attach(this.path, x, 0)
    host.attach(this.path, y, 1)
    tcp.addClaim(this)
  }

  /**
   * TcpFlowClaim: a segment of one of the table's connections enters at the end facing
   * its sender's interface (the row knows which; not the ingress, which a reassembled
   * datagram lacks), so it leaves towards the other connection's.
   */
  claim(src: number, dst: number, ports: number, _ingress: number): PathEnd | null {
    const e = this.stage.endOf(src, dst, ports)
    return e < 0 ? null : this.path.ends[e as 0 | 1]
  }

  /** The end facing `iface` (for frames queued on a connection's old path). */
  endFacing(iface: Interface): PathEnd {
    return this.path.ends[iface === this.x ? 0 : 1]
  }

  /** Ends every row (as 'rst'; the forwarder reports its own reason), drops the claim and closes the path. */
  close(): void {
    this.tcp.removeClaim(this)
    this.stage.endAll('rst')
    this.path.betweenMessages(() => {
      this.path.close()
      this.host.detach(this.path)
    })
  }
}
