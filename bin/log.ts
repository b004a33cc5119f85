/**
 * A small levelled, structured logger for the CLI: one line per event on stderr, as text
 * (`12:00:00.123 info  proxy socks: spliced session=3 ms=2.1`) or as JSON lines
 * (`{"time":...,"level":"info","msg":"...",...}`, what pino would print).
 *
 * Why not pino: the CLI needs levels, fields and JSON lines on one stream, a dozen lines
 * here; pino would add a dependency tree (and worker threads for pretty output) to a
 * package whose only runtime dependency is commander.
 * @module
 */
import { LOG_LEVELS, type LogLevel } from './config/schema.js'

/** Fields attached to a log line. */
export type LogFields = Record<string, string | number | boolean | null | undefined>

/** A levelled logger. */
export interface Logger {
  /** The level below which lines are dropped. */
  readonly level: LogLevel
  /** Logs at `trace`. */
  trace(msg: string, fields?: LogFields): void
  /** Logs at `debug`. */
  debug(msg: string, fields?: LogFields): void
  /** Logs at `info`. */
  info(msg: string, fields?: LogFields): void
  /** Logs at `warn`. */
  warn(msg: string, fields?: LogFields): void
  /** Logs at `error`. */
  error(msg: string, fields?: LogFields): void
}

/** Creates a logger writing to `write` (default: stderr). */
export function createLogger(level: LogLevel, opts: { json?: boolean; write?: (line: string) => void } = {}): Logger {
  const min = LOG_LEVELS.indexOf(level)
  const write = opts.write ?? ((line: string) => void process.stderr.write(line + '\n'))
  const emit = (lvl: LogLevel, msg: string, fields: LogFields = {}): void => {
    if (LOG_LEVELS.indexOf(lvl) < min) return
    const now = new Date()
    if (opts.json === true) {
      write(JSON.stringify({ time: now.getTime(), level: lvl, msg, ...fields }))
      return
    }
    const kv = Object.entries(fields).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${typeof v === 'string' && /\s/.test(v) ? JSON.stringify(v) : String(v)}`)
    write(`${now.toISOString().slice(11, 23)} ${lvl.padEnd(5)} ${msg}${kv.length ? ' ' + kv.join(' ') : ''}`)
  }
  return {
    level,
    trace: (m, f) => emit('trace', m, f),
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  }
}
