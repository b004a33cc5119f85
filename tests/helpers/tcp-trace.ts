/**
 * A packet trace of every TCP stage (segments out with the sender's state, segments in),
 * for replaying a failing randomized seed: `TCP_TRACE=1 PATHSPLICE_SEED=<seed>
 * TCP_RANDOM_SEEDS=1 npx tap tests/e2e/tcp-random.test.ts`.
 */
import type { Msg } from '../../core/msg.js'
import { parseTcp } from '../../stages/tcp/segment.js'
import { TcpStage } from '../../stages/tcp/stage.js'
import { Tcb } from '../../stages/tcp/tcb.js'
import { describeSeg } from './tcp-harness.js'

/** Starts tracing to `log`; returns a function that stops it. */
export function traceTcp(log: (line: string) => void): () => void {
  const out = TcpStage.prototype.output
  const inp = Tcb.prototype.input
  TcpStage.prototype.output = function (this: TcpStage, m: Msg): void {
    const x = parseTcp(m.buf, m.off, m.end)
    const c = this.tcb
    if (typeof x !== 'string') log(`${this.now().toFixed(1)} ${c.localPort}> ${describeSeg(x)} [${c.state} una=${c.sndUna} nxt=${c.sndNxt} max=${c.sndMax} wnd=${c.sndWnd} cwnd=${c.cwnd}${c.inRecovery ? ' recovery' : ''}]`)
    out.call(this, m)
  }
  Tcb.prototype.input = function (this: Tcb, m: Msg): void {
    const x = parseTcp(m.buf, m.off, m.end)
    if (typeof x !== 'string') log(`      ${this.localPort}< ${describeSeg(x)}`)
    inp.call(this, m)
  }
  return () => {
    TcpStage.prototype.output = out
    Tcb.prototype.input = inp
  }
}
