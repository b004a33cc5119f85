/**
 * Shared benchmark plumbing: time a function with mitata, describe the machine, and write
 * results as JSON under `benchmarks/results/` (Markdown tables are built from these).
 * @module
 */
import { measure } from 'mitata'
import { mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import type { SuiteContext } from './suite.js'

/** One measured figure. */
export interface BenchFigure {
  /** What was measured. */
  name: string
  /** Mean nanoseconds per operation. */
  nsPerOp: number
  /** Median nanoseconds per operation. */
  p50: number
  /** 99th percentile nanoseconds per operation. */
  p99: number
  /** Operations per second (1e9 / nsPerOp). */
  opsPerSec: number
  /** Samples mitata took. */
  samples: number
}

/** The machine a run happened on. */
export interface MachineInfo {
  /** CPU model. */
  cpu: string
  /** Logical cores. */
  cores: number
  /** Total memory in GiB. */
  memGiB: number
  /** Node version. */
  node: string
  /** Kernel release. */
  kernel: string
}

/** Describes this machine. */
export function machine(): MachineInfo {
  const cpus = os.cpus()
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    kernel: os.release(),
  }
}

/**
 * Times `fn`, which performs `opsPerCall` operations per call (e.g. a batch of 64
 * packets), and returns per-operation figures.
 */
export async function timeOps(name: string, fn: () => void, opsPerCall = 1, quick = false): Promise<BenchFigure> {
  const stats = await measure(fn, { min_cpu_time: (quick ? 100 : 500) * 1e6 })
  const ns = stats.avg / opsPerCall
  return { name, nsPerOp: ns, p50: stats.p50 / opsPerCall, p99: stats.p99 / opsPerCall, opsPerSec: 1e9 / ns, samples: stats.ticks }
}

/**
 * {@link timeOps} without batching (each sample is one call of `fn`, which should take
 * microseconds or more), for suites that honour {@link SuiteContext.smoke}: in smoke mode `fn`
 * runs five times under `performance.now()` instead of mitata (the shape of the figure,
 * not its value, is what a smoke run checks).
 */
export async function timeOpsCtx(name: string, fn: () => void, opsPerCall: number, ctx: Pick<SuiteContext, 'quick' | 'smoke'>): Promise<BenchFigure> {
  if (ctx.smoke !== true) {
    // No batching: mitata would otherwise run a call under 65 µs 4096 times per sample
    // (at least 12 samples), far more rounds than the time budget says.
    const stats = await measure(fn, { min_cpu_time: (ctx.quick ? 100 : 500) * 1e6, batch_threshold: 0 })
    const ns = stats.avg / opsPerCall
    return { name, nsPerOp: ns, p50: stats.p50 / opsPerCall, p99: stats.p99 / opsPerCall, opsPerSec: 1e9 / ns, samples: stats.ticks }
  }
  const t0 = performance.now()
  for (let i = 0; i < 5; i++) fn()
  const ns = ((performance.now() - t0) * 1e6) / (5 * opsPerCall)
  return { name, nsPerOp: ns, p50: ns, p99: ns, opsPerSec: 1e9 / ns, samples: 5 }
}

/** The results folder in the source tree (also when running from `dist/`). */
export function resultsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  // dist/benchmarks/lib -> benchmarks/results ; benchmarks/lib -> benchmarks/results
  dir = dir.replace(/[\\/]dist[\\/]benchmarks[\\/]lib$/, '/benchmarks/lib')
  return join(dir, '..', 'results')
}

/** Writes `data` with a date and the machine to `benchmarks/results/<name>.json`; returns the path. */
export function writeResults(name: string, data: unknown): string {
  const dir = resultsDir()
  mkdirSync(dir, { recursive: true })
  const file = join(dir, `${name}.json`)
  writeFileSync(file, JSON.stringify({ name, date: new Date().toISOString(), machine: machine(), data }, null, 2) + '\n')
  return file
}

/** Formats figures as a Markdown table. */
export function table(figures: BenchFigure[]): string {
  const rows = figures.map(f => `| ${f.name} | ${f.nsPerOp.toFixed(1)} | ${(f.opsPerSec / 1e6).toFixed(2)} |`)
  return ['| benchmark | ns/op | M ops/s |', '|---|---:|---:|', ...rows].join('\n')
}
