/**
 * The path-spec language: paths written as chains of modules between devices.
 *
 * ```
 * # the Scout IP router, and a SOCKS proxy path
 * def stack = ETH -> IP
 * router: tap0 -> ETH -> IP(route) -> ETH -> tap1
 * tap0 -> stack -> TCP -> PROXY(socks5, port=1080) -> TCP -> IP -> ETH -> tap1
 * ```
 * Grammar (statements end at a newline or `;`; `#` starts a comment):
 * ```
 * spec      = { statement }
 * statement = "def" NAME "=" chain | [ NAME ":" ] chain
 * chain     = element { "->" element }
 * element   = NAME [ "(" [ arg { "," arg } ] ")" ]
 * arg       = [ NAME "=" ] value
 * value     = WORD | STRING            (WORD: letters, digits, and . : / _ + -)
 * ```
 * A chain may continue on the next line after a trailing `->`. A `def` name used as an
 * element is expanded in place. Errors carry line and column and say what was expected.
 * The same structures can be built from TypeScript ({@link chain}, {@link element}).
 * @module
 */
import { PathSpecSyntaxError } from './errors.js'
import type { StageArgs } from './module.js'

/** One element of a chain: a module or device name with arguments and its source position. */
export interface SpecElement {
  /** Name as written (module names are matched case-insensitively, devices exactly). */
  name: string
  /** Arguments. */
  args: StageArgs
  /** 1-based line (0 when built from TypeScript). */
  line: number
  /** 1-based column (0 when built from TypeScript). */
  column: number
}

/** A chain of elements, optionally named (`router: tap0 -> ...`). */
export interface SpecChain {
  /** Path name, if given. */
  name: string | null
  /** Elements after `def` expansion. */
  elements: SpecElement[]
  /** 1-based line where the chain starts. */
  line: number
}

/** A parsed spec: named definitions and the paths to build. */
export interface PathSpec {
  /** `def` definitions by name (already expanded). */
  defs: Map<string, SpecElement[]>
  /** Paths in source order. */
  paths: SpecChain[]
}

type TokKind = 'word' | 'string' | 'arrow' | 'lparen' | 'rparen' | 'comma' | 'equals' | 'colon' | 'newline' | 'eof'

interface Token {
  kind: TokKind
  text: string
  line: number
  column: number
}

const WORD_CHAR = /[A-Za-z0-9._:/+\-]/

const DESCRIBE: Record<TokKind, string> = {
  word: 'a name',
  string: 'a string',
  arrow: "'->'",
  lparen: "'('",
  rparen: "')'",
  comma: "','",
  equals: "'='",
  colon: "':'",
  newline: 'end of line',
  eof: 'end of input',
}

function tokenize(src: string, source: string): Token[] {
  const out: Token[] = []
  let i = 0
  let line = 1
  let col = 1
  const err = (msg: string): never => {
    throw new PathSpecSyntaxError(msg, line, col, source)
  }
  while (i < src.length) {
    const c = src[i]!
    if (c === '\n' || c === ';') {
      out.push({ kind: 'newline', text: c, line, column: col })
      i++
      if (c === '\n') {
        line++
        col = 1
      } else col++
      continue
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      i++
      col++
      continue
    }
    if (c === '#') {
      while (i < src.length && src[i] !== '\n') i++
      continue
    }
    const start = { line, column: col }
    if (c === '-' && src[i + 1] === '>') {
      out.push({ kind: 'arrow', text: '->', ...start })
      i += 2
      col += 2
      continue
    }
    const single: Partial<Record<string, TokKind>> = { '(': 'lparen', ')': 'rparen', ',': 'comma', '=': 'equals' }
    const k = single[c]
    if (k !== undefined) {
      out.push({ kind: k, text: c, ...start })
      i++
      col++
      continue
    }
    if (c === '"') {
      let s = ''
      i++
      col++
      while (i < src.length && src[i] !== '"') {
        if (src[i] === '\n') break
        if (src[i] === '\\' && i + 1 < src.length) {
          s += src[i + 1]
          i += 2
          col += 2
          continue
        }
        s += src[i]
        i++
        col++
      }
      if (i >= src.length || src[i] === '\n') {
        throw new PathSpecSyntaxError('unterminated string: add the closing " before the end of the line', start.line, start.column, source)
      }
      i++
      col++
      out.push({ kind: 'string', text: s, ...start })
      continue
    }
    if (WORD_CHAR.test(c)) {
      let s = ''
      // A word may contain '-' and ':' (addresses, ranges) but never the arrow '->';
      // a trailing ':' after a name is the path-name colon.
      while (i < src.length && WORD_CHAR.test(src[i]!) && !(src[i] === '-' && src[i + 1] === '>')) {
        s += src[i]
        i++
        col++
      }
      if (s === ':') {
        out.push({ kind: 'colon', text: ':', ...start })
      } else if (s.endsWith(':') && s.length > 1 && !s.slice(0, -1).includes(':')) {
        out.push({ kind: 'word', text: s.slice(0, -1), ...start })
        out.push({ kind: 'colon', text: ':', line, column: col - 1 })
      } else {
        out.push({ kind: 'word', text: s, ...start })
      }
      continue
    }
    err(`unexpected character '${c}': expected a name, '->', '(', ')', ',', '=', a string or a comment`)
  }
  out.push({ kind: 'eof', text: '', line, column: col })
  return out
}

const NAME = /^[A-Za-z_][A-Za-z0-9_/.+-]*$/

class Parser {
  private pos = 0
  readonly defs = new Map<string, SpecElement[]>()
  readonly paths: SpecChain[] = []

  constructor(
    private readonly toks: Token[],
    private readonly source: string,
  ) {}

  parse(): PathSpec {
    for (;;) {
      this.skipNewlines()
      if (this.peek().kind === 'eof') break
      this.statement()
    }
    return { defs: this.defs, paths: this.paths }
  }

  private peek(k = 0): Token {
    return this.toks[Math.min(this.pos + k, this.toks.length - 1)]!
  }

  private next(): Token {
    const t = this.peek()
    if (this.pos < this.toks.length - 1) this.pos++
    return t
  }

  private fail(t: Token, expected: string): never {
    const got = t.kind === 'word' || t.kind === 'string' ? `'${t.text}'` : DESCRIBE[t.kind]
    throw new PathSpecSyntaxError(`expected ${expected}, got ${got}`, t.line, t.column, this.source)
  }

  private expect(kind: TokKind, expected = DESCRIBE[kind]): Token {
    const t = this.next()
    if (t.kind !== kind) this.fail(t, expected)
    return t
  }

  private skipNewlines(): void {
    while (this.peek().kind === 'newline') this.next()
  }

  private endOfStatement(): void {
    const t = this.peek()
    if (t.kind === 'newline' || t.kind === 'eof') return
    this.fail(t, "'->', end of line or ';'")
  }

  private statement(): void {
    const first = this.peek()
    if (first.kind === 'word' && first.text === 'def') {
      this.next()
      const name = this.expect('word', 'a definition name after def')
      if (!NAME.test(name.text)) this.fail(name, 'a definition name (letters, digits, _)')
      if (this.defs.has(name.text)) {
        throw new PathSpecSyntaxError(`'${name.text}' is defined twice: rename one of the definitions`, name.line, name.column, this.source)
      }
      this.expect('equals', `'=' after def ${name.text}`)
      const elements = this.chain()
      this.endOfStatement()
      this.defs.set(name.text, elements)
      return
    }
    let name: string | null = null
    if (first.kind === 'word' && this.peek(1).kind === 'colon') {
      name = first.text
      this.next()
      this.next()
    }
    const elements = this.chain()
    this.endOfStatement()
    this.paths.push({ name, elements, line: first.line })
  }

  private chain(): SpecElement[] {
    const out: SpecElement[] = []
    this.element(out)
    while (this.peek().kind === 'arrow') {
      this.next()
      this.skipNewlines() // a chain may continue after a trailing '->'
      this.element(out)
    }
    return out
  }

  private element(out: SpecElement[]): void {
    const t = this.next()
    if (t.kind !== 'word') this.fail(t, 'a module or device name')
    if (!NAME.test(t.text)) this.fail(t, 'a module or device name (letters, digits, _ . / + -, starting with a letter)')
    const args: StageArgs = { positional: [], named: {} }
    if (this.peek().kind === 'lparen') {
      const open = this.next()
      if (this.peek().kind !== 'rparen') {
        for (;;) {
          this.arg(args)
          const sep = this.next()
          if (sep.kind === 'rparen') break
          if (sep.kind !== 'comma') {
            if (sep.kind === 'newline' || sep.kind === 'eof') {
              throw new PathSpecSyntaxError(`'(' opened here is never closed: add ')'`, open.line, open.column, this.source)
            }
            this.fail(sep, "',' or ')'")
          }
        }
      } else this.next()
    }
    const def = this.defs.get(t.text)
    if (def !== undefined) {
      if (args.positional.length > 0 || Object.keys(args.named).length > 0) {
        throw new PathSpecSyntaxError(`'${t.text}' is a definition and takes no arguments: put them on the modules inside 'def ${t.text}'`, t.line, t.column, this.source)
      }
      for (const e of def) out.push({ ...e, args: { positional: [...e.args.positional], named: { ...e.args.named } } })
      return
    }
    out.push({ name: t.text, args, line: t.line, column: t.column })
  }

  private arg(args: StageArgs): void {
    const t = this.next()
    if (t.kind !== 'word' && t.kind !== 'string') this.fail(t, 'an argument')
    if (t.kind === 'word' && this.peek().kind === 'equals') {
      this.next()
      const v = this.next()
      if (v.kind !== 'word' && v.kind !== 'string') this.fail(v, `a value for ${t.text}=`)
      if (t.text in args.named) {
        throw new PathSpecSyntaxError(`argument '${t.text}' given twice`, t.line, t.column, this.source)
      }
      args.named[t.text] = v.text
      return
    }
    args.positional.push(t.text)
  }
}

/**
 * Parses a path spec. Throws {@link PathSpecSyntaxError} with the line and column of the
 * offending token and what was expected there. `source` names the file in messages.
 */
export function parseSpec(text: string, source = '<spec>'): PathSpec {
  return new Parser(tokenize(text, source), source).parse()
}

/** Builds an element from TypeScript (no source position). */
export function element(name: string, positional: string[] = [], named: Record<string, string> = {}): SpecElement {
  return { name, args: { positional, named }, line: 0, column: 0 }
}

/** Builds a chain from TypeScript: `chain('tap0', element('ETH'), 'IP', 'tap1')`. */
export function chain(...parts: (string | SpecElement)[]): SpecChain {
  return { name: null, elements: parts.map(p => (typeof p === 'string' ? element(p) : p)), line: 0 }
}

/** Formats a chain back to spec text (round-trips through {@link parseSpec}). */
export function formatChain(c: SpecChain): string {
  const quote = (v: string): string => (/^[A-Za-z0-9._:/+-]+$/.test(v) && !v.includes('->') ? v : JSON.stringify(v))
  const body = c.elements
    .map(e => {
      const args = [...e.args.positional.map(quote), ...Object.entries(e.args.named).map(([k, v]) => `${k}=${quote(v)}`)]
      return args.length > 0 ? `${e.name}(${args.join(', ')})` : e.name
    })
    .join(' -> ')
  return c.name !== null ? `${c.name}: ${body}` : body
}
