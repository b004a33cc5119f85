import t from 'tap'
import { testSeed } from '../../core/random.js'
import { lossy, randomScenario, runScenario, type Scenario, type ScenarioOptions, type ScenarioResult } from '../helpers/splice-random.js'

/**
 * Randomized splices end to end (issue 6 "done means"): our TCP at both ends, a proxy
 * that splices at a random moment to FWD, IP/FWD or the shared IP/FWD path (1-path or 2-path, data buffered in
 * the proxy and both TCBs), impaired memory wires, option mixes, FIN or RST teardown,
 * virtual time. Each seed must deliver every byte once and in order (digests), complete
 * its splice, leave the forwarder idle, and never stall longer than a few RTOs. A quarter
 * of the seeds also unsplice and splice again up to three times at random moments
 * (including at once in `onUnspliced`, before the rebuilt TCBs sent anything).
 *
 * Replay: SPLICE_SEED=<seed> SPLICE_LOSSY=0|1 npx tap tests/e2e/splice-random.test.ts
 * Offline: SPLICE_SEEDS=5000 (seeds per half), SPLICE_MAX_BYTES (largest transfer one way),
 * SPLICE_CYCLES=1 (every seed unsplices and resplices; default 0.25 of them),
 * SPLICE_STRICT=1 (lossless stalls held to 400 ms whatever the RTOs: hunts slow recoveries).
 */
const ONE = process.env.SPLICE_SEED
const SEEDS = Number(process.env.SPLICE_SEEDS ?? (ONE !== undefined ? 1 : 4000))
const MAX_BYTES = Number(process.env.SPLICE_MAX_BYTES ?? 300_000)
/** The share of seeds that also unsplice and resplice (offline: SPLICE_CYCLES=1 for all). */
const CYCLES = Number(process.env.SPLICE_CYCLES ?? 0.25)
/**
 * Without loss: no stall beyond two RTOs of the TCBs still sending when it began (a
 * spurious timeout, or a segment PAWS dropped after reordering, then its retransmission),
 * and never beyond 2 x the minimum RTO below that. SPLICE_STRICT=1 (offline) holds every
 * stall to the 400 ms floor: a backed-off or inflated RTO then shows as a failure, which
 * is how the drain's slow start was found.
 */
const STALL_LOSSLESS_MS = 400
const STRICT = process.env.SPLICE_STRICT === '1'
function stallBound(s: Scenario, r: ScenarioResult, strict: boolean): number {
  if (lossy(s)) return STALL_LOSSY_MS
  return strict ? STALL_LOSSLESS_MS : Math.max(STALL_LOSSLESS_MS, 2 * r.stallRtoMs)
}

/** What went wrong in run `r` of scenario `s`: the harness' checks, then the stall bound. */
function problemsOf(s: Scenario, r: ScenarioResult, strict = STRICT): string[] {
  const bound = stallBound(s, r, strict)
  return r.longestStallMs > bound ? [...r.problems, `stalled ${r.longestStallMs.toFixed(0)} ms (bound ${bound.toFixed(0)} ms)`] : r.problems
}
/**
 * With loss: six timeouts of one segment in a row (200 ms doubling; a backoff begun by a
 * zero window before the splice carries on), a few RTOs.
 */
const STALL_LOSSY_MS = 12_700

function half(name: string, o: ScenarioOptions): void {
  t.test(`${name}: ${SEEDS} randomized splices`, async t => {
    const base = ONE !== undefined ? Number(ONE) >>> 0 : testSeed()
    t.comment(`seeds ${base}..${(base + SEEDS - 1) >>> 0} (replay one: SPLICE_SEED=<seed> SPLICE_LOSSY=${o.lossy ? 1 : 0})`)
    let failures = 0
    let spliced = 0
    let refused = 0
    let resets = 0
    let worstStall = 0
    let withRto = 0
    let splicesMs = 0
    let unsplices = 0
    let cycled = 0
    const byMode: Record<string, number> = {}
    const start = Date.now()
    for (let i = 0; i < SEEDS && failures < 5; i++) {
      const seed = (base + i) >>> 0
      const s = randomScenario(seed, o)
      const r = runScenario(s)
      byMode[s.mode] = (byMode[s.mode] ?? 0) + 1
      if (r.spliced) {
        spliced++
        splicesMs += r.spliceMs
      }
      if (r.refused !== null) refused++
      unsplices += r.unsplices
      if ((s.cycles?.length ?? 0) > 0) cycled++
      if (r.aborted) resets++
      if (r.rtoTimeouts > 0) withRto++
      worstStall = Math.max(worstStall, r.longestStallMs)
      const problems = problemsOf(s, r)
      if (problems.length > 0) {
        failures++
        t.fail(`seed=${seed}: ${problems.join('; ')}`, { scenario: s, result: r })
      }
    }
    t.equal(failures, 0, `all seeds from ${base} passed`)
    // (A statement about many seeds: a replay of one may legitimately not splice.)
    if (SEEDS >= 100) t.ok(spliced > SEEDS / 2, `most runs spliced (${spliced}/${SEEDS}; ${refused} refused (both peers had finished, or under loss a hole outlived the splice wait); ${resets} ended by RST)`)
    t.comment(`${SEEDS} seeds in ${Date.now() - start} ms wall; mean splice ${(splicesMs / Math.max(1, spliced)).toFixed(1)} ms virtual; ` +
      `longest stall ${worstStall.toFixed(0)} ms virtual; ${withRto} runs with an RTO; ${cycled} runs asked to unsplice and resplice, ${unsplices} unsplices; modes ${JSON.stringify(byMode)}`)
  })
}

const which = process.env.SPLICE_LOSSY
if (which !== '1') half('reordering, duplication, jitter', { lossy: false, maxBytes: MAX_BYTES, cycles: CYCLES })
if (which !== '0') half('plus loss and corruption', { lossy: true, maxBytes: MAX_BYTES, cycles: CYCLES })

// Seeds that once failed, run on every CI run whatever the random base.
const PINNED: readonly { seed: number; lossy: boolean; cycles?: number; why: string }[] = [
  // The server aborts in LAST-ACK after both FINs were forwarded; dropping that RST while
  // nothing was owed any more left the splice in 'splicing' for good.
  { seed: 350404469, lossy: false, why: 'RST after both FINs, nothing owed: passed on, the splice ends' },
  // The server FINs while its TCB drains, then aborts: its RSTs answer the draining TCB's
  // segments, whose ACK predates that FIN, so they carry the FIN's seq. The client had
  // acknowledged the FIN: one below its RCV.NXT, it dropped them and sat out TIME-WAIT.
  { seed: 2875357509, lossy: false, why: "a RST at the forwarded FIN's seq is moved to the receiver's RCV.NXT" },
  // Resplice after an unsplice: the rebuilt TCB, in slow start, held back its buffered
  // head while the forwarded data beyond it reached the server; the server's duplicate
  // ACKs for that data drove spurious fast retransmits whose TSvals (kept monotonic) then
  // PAWS-dropped forwarded segments still in flight, and both ends waited for an RTO
  // (544 ms stalled).
  { seed: 2557328356, lossy: false, why: 'a draining TCB sends its buffered head as the window allows (not cwnd, no Nagle)' },
  // The proxy's ACK of server bytes it consumed was lost; the server's retransmissions are
  // chopped to ACKs below the client's RCV.NXT, which the client must answer with the ACK
  // the server needs. (Moved into the client's window they drew no answer: the server
  // retransmitted until it timed out.) Found with every seed cycling.
  { seed: 700004629, lossy: true, cycles: 1, why: 'a chopped retransmission keeps its seq below RCV.NXT: the receiver answers it' },
  // The client aborts; its RSTs answering old segments (seq = their stale ACKs, below the
  // server's RCV.NXT) overtook its exact RST. Passed on, the first one ended the splice;
  // the server dropped it (RFC 5961) and, with nothing left to send, never heard of the
  // reset: the exact RST found no splice. Drawn by a CI run.
  { seed: 19207829, lossy: false, why: "a RST below the receiver's ACK is dropped and the splice stays up for the exact one" },
]
if (ONE === undefined) {
  t.test('pinned seeds', async t => {
    for (const p of PINNED) {
      const s = randomScenario(p.seed, { lossy: p.lossy, maxBytes: MAX_BYTES, cycles: p.cycles ?? CYCLES })
      const r = runScenario(s)
      // Strict: a pinned seed is held to what it was fixed for.
      t.same(problemsOf(s, r, true), [], `seed ${p.seed} (${p.why})`)
    }
  })
}
