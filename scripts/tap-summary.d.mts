/** A reader of node-tap's TAP output (see tap-summary.mjs). */
export interface TapSummary {
  /** Takes one line of TAP output (without its newline). */
  line(text: string): void
  /** The closing lines: the failed assertions (if any), then `N passed, N failed, N skipped`. */
  end(exitCode: number | null): string[]
}
/** A new reader. */
export function tapSummary(): TapSummary
