/**
 * The benchmark suite contract used by `npm run bench` (benchmarks/run.ts): each suite
 * measures, returns tables (rendered into RESULTS.md), optional vega-lite charts
 * (rendered to SVG) and its raw data (written as JSON).
 * @module
 */

/** A table of results. */
export interface ResultTable {
  /** Table title. */
  title: string
  /** Column headers. */
  columns: string[]
  /** Rows of cells (numbers are formatted by the renderer). */
  rows: (string | number)[][]
  /** Notes printed under the table (targets met or missed, and why). */
  notes?: string[]
}

/** What a suite returns. */
export interface SuiteResult {
  /** Tables for RESULTS.md. */
  tables: ResultTable[]
  /** vega-lite specs (data inline) rendered to `<suite>-<n>.svg`. */
  charts?: { name: string; spec: Record<string, unknown> }[]
  /** Raw data for the JSON file. */
  data: unknown
}

/** What a suite gets from the runner. */
export interface SuiteContext {
  /** Quick mode: fewer samples and smaller loads (the whole run stays under 3 minutes). */
  quick: boolean
  /**
   * Test only: the least work that still produces every table, chart and check (a few
   * rounds, tiny loads); the timings mean nothing. Implies `quick`.
   */
  smoke?: boolean
  /** Reports progress within the suite (0..1) with a label. */
  progress(fraction: number, label: string): void
}

/** A benchmark suite. */
export interface Suite {
  /** File-name-safe id. */
  id: string
  /** Title in RESULTS.md. */
  title: string
  /** Runs the suite. */
  run(ctx: SuiteContext): Promise<SuiteResult>
}
