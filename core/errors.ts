/**
 * Typed errors for API misuse and bad configuration. Per-packet problems are never
 * exceptions: they are counted drops (see {@link DropCounter}).
 *
 * Match on `code`, which is stable across versions; messages may improve.
 * @module
 */

/** Every error pathsplice throws on purpose. */
export class PathspliceError extends Error {
  /** Stable machine-readable code. */
  readonly code: string
  constructor(message: string, code = 'PS_ERR', options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'PathspliceError'
    this.code = code
  }
}

/** A path spec (or config) has a syntax error at `line`:`column` (both 1-based). */
export class PathSpecSyntaxError extends PathspliceError {
  declare readonly code: 'PS_ERR_SPEC_SYNTAX'
  /** 1-based line of the offending token. */
  readonly line: number
  /** 1-based column of the offending token. */
  readonly column: number
  /** Name of the source (file name, or `<spec>`). */
  readonly source: string
  constructor(message: string, line: number, column: number, source = '<spec>') {
    super(`${source}:${line}:${column}: ${message}`, 'PS_ERR_SPEC_SYNTAX')
    this.name = 'PathSpecSyntaxError'
    this.line = line
    this.column = column
    this.source = source
  }
}

/** A path spec is well-formed but cannot be built (unknown module or device, bad argument). */
export class PathSpecError extends PathspliceError {
  declare readonly code: 'PS_ERR_SPEC'
  /** 1-based line of the element at fault (0 if built from TypeScript). */
  readonly line: number
  /** 1-based column of the element at fault (0 if built from TypeScript). */
  readonly column: number
  constructor(message: string, line = 0, column = 0, source = '<spec>') {
    super(line > 0 ? `${source}:${line}:${column}: ${message}` : message, 'PS_ERR_SPEC')
    this.name = 'PathSpecError'
    this.line = line
    this.column = column
  }
}

/** An operation on a path or splice was asked for in a state that does not allow it. */
export class SpliceStateError extends PathspliceError {
  declare readonly code: 'PS_ERR_SPLICE_STATE'
  constructor(message: string) {
    super(message, 'PS_ERR_SPLICE_STATE')
    this.name = 'SpliceStateError'
  }
}

/** A device could not be opened, configured or used; `cause` holds the system error. */
export class DeviceError extends PathspliceError {
  declare readonly code: 'PS_ERR_DEVICE'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'PS_ERR_DEVICE', options)
    this.name = 'DeviceError'
  }
}

/** A configuration value is invalid; the message says what, where and how to fix it. */
export class ConfigError extends PathspliceError {
  declare readonly code: 'PS_ERR_CONFIG'
  constructor(message: string) {
    super(message, 'PS_ERR_CONFIG')
    this.name = 'ConfigError'
  }
}
