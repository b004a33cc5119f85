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
    .description('the main job on an embedded default: real bytes through 2-path, 1-path, FWD, IP/FWD (spliced live) and IP router, digests checked, a comparison table')
    .option('--json', 'print one machine-readable JSON summary on stdout')
    .option('--bytes <n>', 'bytes each way per configuration', v => Number(v), 16_000_000)
    .option('--runs <n>', 'runs per configuration, the fastest counts', v => Number(v), 3)
    .option('--seed <n>', 'seed of the payloads', v => Number(v))
    .option('--tap', 'use Linux kernel peers in network namespaces over TAP (root)')
    .addHelpText('after', '\nExit codes: 0 all digests matched, 1 a digest mismatched or a transfer failed, 2 bad usage (or --tap without root/TAP).')
    .action(async (opts: { json?: boolean; bytes: number; runs: number; seed?: number; tap?: boolean }) => {
      if (!Number.isInteger(opts.bytes) || opts.bytes <= 0) throw new PathspliceError(`--bytes must be a positive integer, got ${opts.bytes}`, 'PS_ERR_USAGE')
      if (!Number.isInteger(opts.runs) || opts.runs <= 0) throw new PathspliceError(`--runs must be a positive integer, got ${opts.runs}`, 'PS_ERR_USAGE')
      if (opts.seed !== undefined && !(Number.isInteger(opts.seed) && opts.seed >= 0)) throw new PathspliceError(`--seed must be a whole number, got ${opts.seed}`, 'PS_ERR_USAGE')
      const o = { json: opts.json === true, bytes: opts.bytes, runs: opts.runs, ...(opts.seed !== undefined ? { seed: opts.seed } : {}) }
      const ok = opts.tap === true ? await (await import('./demo-tap.js')).runTapDemo(o) : await runDemo(o)
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
