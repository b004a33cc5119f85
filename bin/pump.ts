/**
 * One end of a test or demo transfer over our TCP, driven through the TCB API: writes its
 * bytes as the window allows (random write sizes if given a Random), then FIN; hashes what
 * arrives. Shared by `pathsplice demo` and the tests' memory-wire networks.
 * @module
 */
import { createHash } from 'node:crypto'
import type { Random } from '../core/random.js'
import type { TcpConnection } from '../stages/tcp/module.js'

/** Options of {@link Pump}. */
export interface PumpOptions {
  /**
   * FIN only once everything is sent and the peer's FIN arrived (default false: FIN as soon
   * as everything is sent). A server behind MSOCKS needs it: a FIN forwarded before the
   * client's would make the session unmovable.
   */
  finAfterPeer?: boolean
}

/** One side of a transfer: writes its bytes as the window allows, then FIN; hashes what arrives. */
export class Pump {
  readonly hash = createHash('sha256')
  received = 0
  sent = 0
  gotEnd = false
  closed = false
  error: string | null = null
  private readonly buf = new Uint8Array(65536)
  private readonly finAfterPeer: boolean
  constructor(readonly conn: TcpConnection, readonly data: Uint8Array, private readonly rng: Random | null = null, opts: PumpOptions = {}) {
    this.finAfterPeer = opts.finAfterPeer ?? false
    const tcb = conn.stage.tcb
    tcb.events = {
      connected: () => this.write(),
      writable: () => this.write(),
      data: () => this.read(),
      end: () => this.read(),
      error: r => {
        this.error = r
      },
      closed: () => {
        this.closed = true
      },
    }
    conn.stage.app = { onData: () => this.read() }
    if (tcb.state === 'ESTABLISHED') this.write()
  }
  write(): void {
    const tcb = this.conn.stage.tcb
    while (this.sent < this.data.length) {
      // Random write sizes exercise Nagle and partial segments.
      const want = this.rng ? Math.min(this.data.length - this.sent, 1 + this.rng.int(0, 6000)) : this.data.length - this.sent
      const n = tcb.write(this.data, this.sent, want)
      if (n === 0) break
      this.sent += n
    }
    this.maybeFin()
  }
  read(): void {
    const tcb = this.conn.stage.tcb
    for (;;) {
      const n = tcb.read(this.buf)
      if (n === 0) break
      this.hash.update(this.buf.subarray(0, n))
      this.received += n
    }
    if (tcb.peerFinished) this.gotEnd = true
    if (this.finAfterPeer) this.maybeFin()
  }
  private maybeFin(): void {
    const tcb = this.conn.stage.tcb
    if (this.sent === this.data.length && !tcb.finQueued && (!this.finAfterPeer || this.gotEnd)) tcb.shutdown()
  }
  digest(): string {
    return this.hash.digest('hex')
  }
}
