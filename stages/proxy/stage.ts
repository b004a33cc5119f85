/**
 * PROXY: where a proxy sees both TCP connections' byte streams (control mode).
 * Consumes: data Msgs pushed up by a TCP stage (`msg.off..end` is payload), and, in a
 *           2-path forwarder, data handed over from the other path for its own TCP.
 * Produces: data Msgs for a TCP stage's send buffer, towards the client or the server.
 * Drops:    'no-session' (data after the session ended).
 * State:    the directions it talks in; the {@link ProxySession} holds everything else.
 *
 * Layouts (DESIGN §4):
 * ```
 *   1-path:  TCP(A) -F-> [PROXY] -F-> TCP(B)      fromClient=F fromServer=B toClient=B toServer=F
 *   2-path:  TCP(A) -F-> [PROXY a] -F-> (end 1 ⇢ path B end 1) -B-> [PROXY b] -B-> TCP(B)
 *            PROXY a: fromClient=F toClient=B toServer=F (crosses to path B); B arrivals relay down
 *            PROXY b: fromServer=F toServer=B toClient=F (crosses to path A); B arrivals relay down
 * ```
 * @module
 */
import type { Msg } from '../../core/msg.js'
import { Stage, type Dir } from '../../core/stage.js'
import type { ProxySession } from './session.js'

/** No direction: this stage never receives data from that side's TCP. */
export const NONE = -1

/** Which directions a {@link ProxyStage} talks in. */
export interface ProxyWiring {
  /** Direction in which the client's data arrives from a TCP stage below, or {@link NONE}. */
  fromClient: Dir | typeof NONE
  /** Direction in which the server's data arrives from a TCP stage below, or {@link NONE}. */
  fromServer: Dir | typeof NONE
  /** Direction to send data for the client. */
  toClient: Dir
  /** Direction to send data for the server. */
  toServer: Dir
}

/** The PROXY stage. */
export class ProxyStage extends Stage {
  /** The session this stage serves (null once detached from it). */
  session: ProxySession | null
  /** Its directions. */
  readonly wiring: ProxyWiring

  /** Creates a stage for `session` with `wiring`. */
  constructor(session: ProxySession, wiring: ProxyWiring, up: Dir) {
    super('PROXY', up)
    this.session = session
    this.wiring = wiring
  }

  /** Data from a TCP stage goes to the session; data handed over from the other path goes on down. */
  deliver(msg: Msg, dir: Dir): void {
    const s = this.session
    if (s === null) return this.drop(msg, 'no-session')
    const w = this.wiring
    if (dir === w.fromClient) s.fromClient(msg, this)
    else if (dir === w.fromServer) s.fromServer(msg, this)
    else {
      // 2-path hand-over: relayed data from the other path, on to this path's TCP.
      s.handedOver(msg, dir === w.toServer)
      this.send(msg, dir)
    }
  }

  /** One line for path dumps. */
  override describe(): string {
    return `${this.name}(${this.session?.handlerName ?? '-'})`
  }
}
