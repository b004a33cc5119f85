/** Captures console.log / console.error lines (a CLI test reads what a command printed); `restore()` puts them back. */
export function captureConsole(): { out: string[]; err: string[]; restore: () => void } {
  const out: string[] = []
  const err: string[] = []
  const log = console.log
  const error = console.error
  console.log = (...a: unknown[]) => void out.push(a.join(' '))
  console.error = (...a: unknown[]) => void err.push(a.join(' '))
  return { out, err, restore: () => ((console.log = log), (console.error = error)) }
}
