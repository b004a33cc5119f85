/**
 * JSON with comments (`//`, `/* *\/`) and trailing commas, parsed into a tree that keeps
 * every value's line and column, so config errors can point at the exact spot.
 * Otherwise strict RFC 8259: double-quoted strings and keys, no NaN, duplicate keys refused.
 * @module
 */
import { PathspliceError } from '../../core/errors.js'

/** A position in a source file (1-based). */
export interface Pos {
  /** Line, from 1. */
  line: number
  /** Column (UTF-16 code units), from 1. */
  column: number
}

/** A parsed value with its position. */
export type JNode =
  | { kind: 'object'; pos: Pos; entries: Map<string, { key: Pos; value: JNode }> }
  | { kind: 'array'; pos: Pos; items: JNode[] }
  | { kind: 'string'; pos: Pos; value: string; raw: boolean }
  | { kind: 'number'; pos: Pos; value: number }
  | { kind: 'boolean'; pos: Pos; value: boolean }
  | { kind: 'null'; pos: Pos }

/** A config error at `file:line:column`: what is wrong, what was expected and how to fix it. */
export class ConfigFileError extends PathspliceError {
  /** The file. */
  readonly file: string
  /** Line (1-based). */
  readonly line: number
  /** Column (1-based). */
  readonly column: number
  /** Creates the error; the message is `file:line:column: text`. */
  constructor(file: string, pos: Pos, text: string) {
    super(`${file}:${pos.line}:${pos.column}: ${text}`, 'PS_ERR_CONFIG')
    this.file = file
    this.line = pos.line
    this.column = pos.column
  }
}

/** Parses JSON-with-comments `text` (from `file`, for messages). Throws {@link ConfigFileError}. */
export function parseJsonc(text: string, file: string): JNode {
  let i = 0
  let line = 1
  let lineStart = 0
  const pos = (): Pos => ({ line, column: i - lineStart + 1 })
  const fail = (p: Pos, msg: string): never => {
    throw new ConfigFileError(file, p, msg)
  }
  const describe = (): string => (i >= text.length ? 'the end of the file' : `'${text[i]}'`)

  const skip = (): void => {
    while (i < text.length) {
      const c = text[i]!
      if (c === '\n') {
        i++
        line++
        lineStart = i
      } else if (c === ' ' || c === '\t' || c === '\r') {
        i++
      } else if (c === '/' && text[i + 1] === '/') {
        while (i < text.length && text[i] !== '\n') i++
      } else if (c === '/' && text[i + 1] === '*') {
        const start = pos()
        i += 2
        for (;;) {
          if (i >= text.length) fail(start, 'unterminated /* comment; close it with */')
          if (text[i] === '*' && text[i + 1] === '/') {
            i += 2
            break
          }
          if (text[i] === '\n') {
            line++
            lineStart = i + 1
          }
          i++
        }
      } else {
        break
      }
    }
  }

  const str = (): JNode => {
    const p = pos()
    i++ // opening quote
    let out = ''
    let raw = true
    for (;;) {
      if (i >= text.length || text[i] === '\n') fail(p, 'unterminated string; close it with "')
      const c = text[i]!
      if (c === '"') {
        i++
        return { kind: 'string', pos: p, value: out, raw }
      }
      if (c === '\\') {
        raw = false
        const e = text[i + 1]
        const map: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' }
        if (e !== undefined && e in map) {
          out += map[e]
          i += 2
        } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
          out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16))
          i += 6
        } else {
          fail(pos(), `bad escape '\\${e ?? ''}' in a string; use \\\\ for a backslash`)
        }
      } else {
        out += c
        i++
      }
    }
  }

  const value = (): JNode => {
    skip()
    const p = pos()
    const c = text[i]
    if (c === '{') {
      i++
      const entries = new Map<string, { key: Pos; value: JNode }>()
      skip()
      while (text[i] !== '}') {
        if (text[i] !== '"') fail(pos(), `expected a "quoted" key or '}', got ${describe()}`)
        const k = str() as { pos: Pos; value: string }
        if (entries.has(k.value)) fail(k.pos, `duplicate key "${k.value}"; each key may appear once in an object`)
        skip()
        if (text[i] !== ':') fail(pos(), `expected ':' after the key "${k.value}", got ${describe()}`)
        i++
        const v = value()
        entries.set(k.value, { key: k.pos, value: v })
        skip()
        if (text[i] === ',') {
          i++
          skip()
        } else if (text[i] !== '}') {
          fail(pos(), `expected ',' or '}' after the value of "${k.value}", got ${describe()}`)
        }
      }
      i++
      return { kind: 'object', pos: p, entries }
    }
    if (c === '[') {
      i++
      const items: JNode[] = []
      skip()
      while (text[i] !== ']') {
        items.push(value())
        skip()
        if (text[i] === ',') {
          i++
          skip()
        } else if (text[i] !== ']') {
          fail(pos(), `expected ',' or ']' in the list, got ${describe()}`)
        }
      }
      i++
      return { kind: 'array', pos: p, items }
    }
    if (c === '"') return str()
    const m = /^(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 64))
    if (m === null) {
      if (c === "'") fail(p, `strings take double quotes: "..." (not '...')`)
      fail(p, `expected a value (object, list, "string", number, true, false or null), got ${describe()}`)
    }
    const tok = m![0]
    i += tok.length
    if (tok === 'true' || tok === 'false') return { kind: 'boolean', pos: p, value: tok === 'true' }
    if (tok === 'null') return { kind: 'null', pos: p }
    return { kind: 'number', pos: p, value: Number(tok) }
  }

  const root = value()
  skip()
  if (i < text.length) fail(pos(), `unexpected ${describe()} after the top-level value`)
  return root
}
