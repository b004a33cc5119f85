#!/usr/bin/env node
/**
 * The pathsplice command line.
 *
 * ```
 * pathsplice demo [--tap]            the main job on an embedded default (no root needed; --tap: kernel peers)
 * pathsplice run <config>            a forwarder from a config file, until SIGINT/SIGTERM
 * pathsplice paths [config]          module graph, classifiers, paths (of a config, or --control of a running one)
 * pathsplice stats --control <sock>  live counters of a running forwarder (--json)
 * pathsplice record / replay         pcap of a device of a running forwarder; replay a pcap into it
 * pathsplice check <spec>            parse a path-spec file and report errors with line:column
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
import { parseConfig, type RunConfig } from './config/schema.js'
import { describeConfig, startForwarder, type ForwarderStats } from './config/runtime.js'
import { closeControl, controlRequest, serveControl, type ControlReply, type ControlRequest } from './control.js'
import { createLogger } from './log.js'
import { LOG_LEVELS, type LogLevel } from './config/schema.js'

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

function readConfig(file: string): RunConfig {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new PathspliceError(`cannot read config file '${file}': ${(err as NodeJS.ErrnoException).code ?? String(err)}`, 'PS_ERR_IO')
  }
  return parseConfig(text, file)
}

async function ask(sock: string, req: ControlRequest, timeoutMs?: number): Promise<ControlReply & { ok: true }> {
  let r: ControlReply
  try {
    r = await controlRequest(sock, req, timeoutMs)
  } catch (err) {
    throw new RuntimeFailure((err as Error).message)
  }
  if (!r.ok) throw new PathspliceError(r.error, 'PS_ERR_USAGE')
  return r
}

/** A run-time failure (exit code 1), as opposed to bad input (2). */
class RuntimeFailure extends Error {}

const EXIT_HELP = `
Exit codes: 0 success, 1 run-time failure (a digest mismatch, a device that would not open,
an unreachable control socket), 2 bad usage or bad input (config/spec errors, printed as
file:line:column with what was expected).`

function printStats(s: ForwarderStats): void {
  console.log(`uptime ${s.uptimeSec} s`)
  console.log('| proxy | type | port | accepted | active | spliced | unspliced | splices | failed | unsplices | splice ms (mean) | closed |')
  console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const p of s.proxies) console.log(`| ${p.name} | ${p.type} | ${p.port ?? 'intercept'} | ${p.accepted} | ${p.active} | ${p.spliced} | ${p.unspliced} | ${p.splices} | ${p.spliceFailures} | ${p.unsplices} | ${p.spliceMsMean ?? '-'} | ${p.closed} |`)
  console.log('| device | rx frames | tx frames | rx bytes | tx bytes | drops |')
  console.log('|---|---:|---:|---:|---:|---|')
  for (const d of s.devices) console.log(`| ${d.name} | ${d.rxFrames} | ${d.txFrames} | ${d.rxBytes} | ${d.txBytes} | ${Object.entries(d.drops).map(([k, v]) => `${k} ${v}`).join(', ') || '-'} |`)
  console.log('| path | stages | in (end 0 / end 1) | out (end 0 / end 1) |')
  console.log('|---|---|---:|---:|')
  for (const p of s.paths) console.log(`| ${p.name}${p.gated ? ' (gated)' : ''} | ${p.stages.join(' -> ')} | ${p.inPkts.join(' / ')} | ${p.outPkts.join(' / ')} |`)
  const drops = Object.entries(s.drops)
  console.log(`drops by reason: ${drops.length ? drops.map(([k, v]) => `${k} ${v}`).join(', ') : 'none'}`)
}

/** Builds the CLI program (exported for tests). */
export function program(): Command {
  const cmd = new Command()
    .name('pathsplice')
    .description('Scout-style path-based packet processing with TCP connection splicing')
    .version('0.1.0')
    .showHelpAfterError()
    .addHelpText('after', EXIT_HELP)
    // Before the subcommands are added, so they inherit it: errors and --help throw a
    // CommanderError that main() turns into an exit code, never a process.exit().
    .exitOverride()

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
    .addHelpText('after', EXIT_HELP)
    .argument('<spec>', 'path-spec file')
    .action((file: string) => {
      const spec = parseSpec(readSpec(file), file)
      for (const c of spec.paths) console.log(formatChain(c))
      console.log(`${file}: ok, ${spec.paths.length} path(s), ${spec.defs.size} definition(s)`)
    })

  cmd
    .command('run')
    .description('run a forwarder from a config file (JSON with comments) until SIGINT/SIGTERM')
    .argument('<config>', 'config file (see README, Configuration)')
    .option('--control <socket>', 'serve stats, paths, record and replay on this Unix socket')
    .option('--check', 'validate the config and exit')
    .option('--log-level <level>', `override the config's log level (${LOG_LEVELS.join(', ')})`)
    .option('--log-json', 'log JSON lines instead of text')
    .addHelpText('after', `
Logs go to stderr; once everything is up, one JSON line on stdout:
  {"ready":true,"devices":[...],"namespaces":{"lan":"lan-ns-1234-1"},"control":"/run/ps.sock"}
On SIGINT/SIGTERM: live and spliced sessions are reset (RST), paths and devices closed,
namespaces it created deleted, the control socket removed; then exit 0.${EXIT_HELP}`)
    .action(async (file: string, opts: { control?: string; check?: boolean; logLevel?: string; logJson?: boolean }) => {
      const cfg = readConfig(file)
      if (opts.logLevel !== undefined && !(LOG_LEVELS as readonly string[]).includes(opts.logLevel)) {
        throw new PathspliceError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got '${opts.logLevel}'`, 'PS_ERR_USAGE')
      }
      if (opts.check === true) {
        console.log(`${file}: ok, ${cfg.devices.length} device(s), ${cfg.proxies.length} prox${cfg.proxies.length === 1 ? 'y' : 'ies'}, ${cfg.routers.length} router path(s)`)
        return
      }
      const log = createLogger((opts.logLevel as LogLevel | undefined) ?? cfg.log, { json: opts.logJson === true })
      let fw
      try {
        fw = await startForwarder(cfg, { log })
      } catch (err) {
        throw new RuntimeFailure(`could not start: ${(err as Error).message}`)
      }
      const sockPath = opts.control ?? cfg.control
      let server = null
      try {
        if (sockPath !== null) server = await serveControl(fw, sockPath)
      } catch (err) {
        await fw.close('control socket failed')
        throw err instanceof PathspliceError ? err : new RuntimeFailure(`control socket ${sockPath}: ${(err as Error).message}`)
      }
      const stopped = new Promise<string>(resolve => {
        process.once('SIGINT', () => resolve('SIGINT'))
        process.once('SIGTERM', () => resolve('SIGTERM'))
      })
      console.log(JSON.stringify({ ready: true, devices: [...fw.devices.keys()], proxies: [...fw.proxies.keys()], namespaces: Object.fromEntries(fw.namespaces), control: sockPath }))
      const why = await stopped
      if (server !== null) await closeControl(server, sockPath!)
      await fw.close(why)
    })

  cmd
    .command('paths')
    .description('print the module graph, classifier trees and paths: of a config file, or of a running forwarder (--control)')
    .argument('[config]', 'config file (static view)')
    .option('--control <socket>', 'control socket of a running forwarder (live view: what is spliced now)')
    .addHelpText('after', EXIT_HELP)
    .action(async (file: string | undefined, opts: { control?: string }) => {
      if (opts.control !== undefined) {
        const r = await ask(opts.control, { cmd: 'paths' })
        console.log(String(r['text']))
      } else if (file !== undefined) {
        console.log(describeConfig(readConfig(file)))
      } else {
        throw new PathspliceError('give a config file or --control <socket>', 'PS_ERR_USAGE')
      }
    })

  cmd
    .command('stats')
    .description('live counters of a running forwarder: spliced/unspliced sessions, splice latency, drops by reason')
    .requiredOption('--control <socket>', 'control socket of `pathsplice run --control`')
    .option('--json', 'print the counters as one JSON object')
    .option('--watch <seconds>', 'print again every N seconds until interrupted', v => Number(v))
    .addHelpText('after', EXIT_HELP)
    .action(async (opts: { control: string; json?: boolean; watch?: number }) => {
      if (opts.watch !== undefined && !(opts.watch > 0)) throw new PathspliceError(`--watch must be a positive number of seconds, got ${opts.watch}`, 'PS_ERR_USAGE')
      for (;;) {
        const r = await ask(opts.control, { cmd: 'stats' })
        const s = r['stats'] as ForwarderStats
        if (opts.json === true) console.log(JSON.stringify(s))
        else printStats(s)
        if (opts.watch === undefined) return
        await new Promise(res => setTimeout(res, opts.watch! * 1000))
      }
    })

  cmd
    .command('record')
    .description('record a device of a running forwarder (both directions) into a pcap file')
    .requiredOption('--control <socket>', 'control socket of `pathsplice run --control`')
    .requiredOption('--device <name>', 'device name from the config')
    .requiredOption('-o, --out <file>', 'pcap file to write (tshark/Wireshark open it)')
    .option('--frames <n>', 'stop after N frames', v => Number(v))
    .option('--seconds <s>', 'stop after S seconds', v => Number(v))
    .addHelpText('after', EXIT_HELP)
    .action(async (opts: { control: string; device: string; out: string; frames?: number; seconds?: number }) => {
      if (opts.frames === undefined && opts.seconds === undefined) throw new PathspliceError('give --frames N or --seconds S (or both): a recording needs a limit', 'PS_ERR_USAGE')
      if (opts.frames !== undefined && !(Number.isInteger(opts.frames) && opts.frames > 0)) throw new PathspliceError(`--frames must be a positive integer, got ${opts.frames}`, 'PS_ERR_USAGE')
      if (opts.seconds !== undefined && !(opts.seconds > 0)) throw new PathspliceError(`--seconds must be positive, got ${opts.seconds}`, 'PS_ERR_USAGE')
      const ms = opts.seconds !== undefined ? Math.round(opts.seconds * 1000) : 0
      const { resolve } = await import('node:path')
      const r = await ask(opts.control, { cmd: 'record', device: opts.device, file: resolve(opts.out), frames: opts.frames ?? 0, ms }, ms > 0 ? ms + 10_000 : 3_600_000)
      console.log(`${opts.out}: ${String(r['frames'])} frame(s) from ${opts.device}`)
    })

  cmd
    .command('replay')
    .description('replay a pcap file into a device of a running forwarder, as if the device had received the frames')
    .argument('<pcap>', 'pcap file (Ethernet)')
    .requiredOption('--control <socket>', 'control socket of `pathsplice run --control`')
    .requiredOption('--device <name>', 'device name from the config')
    .option('--pace <pace>', 'fast, or recorded (keep the recorded gaps)', 'fast')
    .addHelpText('after', EXIT_HELP)
    .action(async (file: string, opts: { control: string; device: string; pace: string }) => {
      if (opts.pace !== 'fast' && opts.pace !== 'recorded') throw new PathspliceError(`--pace must be 'fast' or 'recorded', got '${opts.pace}'`, 'PS_ERR_USAGE')
      const { resolve } = await import('node:path')
      const r = await ask(opts.control, { cmd: 'replay', device: opts.device, file: resolve(file), pace: opts.pace }, 3_600_000)
      console.log(`${file}: ${String(r['frames'])} frame(s), ${String(r['bytes'])} bytes into ${opts.device}`)
    })

  return cmd
}

/** Runs the CLI with `argv` (as `process.argv`); returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const cmd = program()
  try {
    await cmd.parseAsync(argv)
    return typeof process.exitCode === 'number' ? process.exitCode : 0
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? 0 : EXIT_USAGE
    }
    if (err instanceof RuntimeFailure) {
      console.error(`pathsplice: ${err.message}`)
      return EXIT_FAILURE
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
