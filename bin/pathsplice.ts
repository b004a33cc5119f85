#!/usr/bin/env node
/**
 * The pathsplice command line.
 *
 * ```
 * pathsplice demo            the main job on an embedded default (no root needed)
 * pathsplice check <spec>    parse a path-spec file and report errors with line:column
 * pathsplice paths [spec]    print the module graph and the paths a spec would build
 * ```
 * Exit codes: 0 success, 1 runtime failure (e.g. a digest mismatch), 2 bad usage or
 * bad input (a spec or config error).
 * @module
 */
import { Command, CommanderError } from 'commander'
import { readFileSync } from 'node:fs'
import { PathspliceError } from '../core/errors.js'
import { formatChain, parseSpec } from '../core/spec.js'
import { runDemo } from './demo.js'

/** Exit code for bad usage or bad input. */
export const EXIT_USAGE = 2
/** Exit code for a run that failed its checks. */
export const EXIT_FAILURE = 1

function readSpec(file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (err) {
    throw new PathspliceError(`cannot read spec file '${file}': ${(err as NodeJS.ErrnoException).code ?? String(err)}`, 'PS_ERR_IO')
  }
}

/** Builds the CLI program (exported for tests). */
export function program(): Command {
  const cmd = new Command()
    .name('pathsplice')
    .description('Scout-style path-based packet processing with TCP connection splicing')
    .version('0.1.0')
    .showHelpAfterError()

  cmd
    .command('demo')
    .description('run the embedded demo: an in-process network on memory wires, no root needed')
    .option('--json', 'print one machine-readable JSON summary on stdout')
    .option('--packets <n>', 'messages to push through each path', v => Number(v), 200_000)
    .option('--swaps <n>', 'hot swaps while traffic flows', v => Number(v), 2_000)
    .option('--seed <n>', 'seed for the randomized parts', v => Number(v))
    .action(async (opts: { json?: boolean; packets: number; swaps: number; seed?: number }) => {
      if (!Number.isInteger(opts.packets) || opts.packets <= 0) throw new PathspliceError(`--packets must be a positive integer, got ${opts.packets}`, 'PS_ERR_USAGE')
      if (!Number.isInteger(opts.swaps) || opts.swaps < 0) throw new PathspliceError(`--swaps must be a whole number, got ${opts.swaps}`, 'PS_ERR_USAGE')
      const ok = await runDemo({ json: opts.json === true, packets: opts.packets, swaps: opts.swaps, ...(opts.seed !== undefined ? { seed: opts.seed } : {}) })
      if (!ok) process.exitCode = EXIT_FAILURE
    })

  cmd
    .command('check')
    .description('parse a path-spec file; print each path or the first error with file:line:column')
    .argument('<spec>', 'path-spec file')
    .action((file: string) => {
      const spec = parseSpec(readSpec(file), file)
      for (const c of spec.paths) console.log(formatChain(c))
      console.log(`${file}: ok, ${spec.paths.length} path(s), ${spec.defs.size} definition(s)`)
    })

  return cmd
}

/** Runs the CLI with `argv` (as `process.argv`); returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const cmd = program().exitOverride()
  try {
    await cmd.parseAsync(argv)
    return typeof process.exitCode === 'number' ? process.exitCode : 0
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? 0 : EXIT_USAGE
    }
    if (err instanceof PathspliceError) {
      console.error(`pathsplice: ${err.message}`)
      return EXIT_USAGE
    }
    console.error(err)
    return EXIT_FAILURE
  }
}

// Run when executed directly (not when imported by tests).
const invoked = process.argv[1] ?? ''
if (/pathsplice(\.js|\.ts)?$/.test(invoked)) {
  process.exitCode = await main(process.argv)
}
