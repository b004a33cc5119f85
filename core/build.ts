/**
 * Builds paths from parsed path specs: devices at the ends, one stage per module element
 * in between, each stage oriented by where it sits relative to the path's apex (the
 * highest protocol layer it crosses).
 * @module
 */
import type { Device } from './device.js'
import { PathSpecError } from './errors.js'
import type { ModuleGraph } from './module.js'
import { Path } from './path.js'
import type { PathSpec, SpecChain, SpecElement } from './spec.js'
import { Dir, type Stage } from './stage.js'

/** A path built from a spec, with the devices named at its ends. */
export interface BuiltPath {
  /** The path (not yet adopted by a scheduler). */
  path: Path
  /** The device at end 0 and at end 1 (null when the spec does not name one). */
  devices: [Device | null, Device | null]
  /** The chain it was built from. */
  chain: SpecChain
}

function distance(a: string, b: string): number {
  const d: number[] = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!
    d[0] = i
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j]!
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1))
      prev = tmp
    }
  }
  return d[b.length]!
}

function suggest(name: string, known: string[]): string {
  const best = known.map(k => ({ k, d: distance(name, k) })).sort((x, y) => x.d - y.d)[0]
  return best !== undefined && best.d <= 2 ? ` Did you mean '${best.k}'?` : ''
}

function at(e: SpecElement, source: string, message: string): PathSpecError {
  return new PathSpecError(message, e.line, e.column, source)
}

/**
 * Builds one path from `chain`. The first and last elements may name devices (from
 * `devices`); every other element must name a module of `graph`. Errors are
 * {@link PathSpecError}s carrying the element's line and column.
 */
export function buildChain(chain: SpecChain, graph: ModuleGraph, devices: ReadonlyMap<string, Device>, opts: { source?: string; attrs?: Record<string, unknown> } = {}): BuiltPath {
  const source = opts.source ?? '<spec>'
  const els = chain.elements
  const ends: [Device | null, Device | null] = [null, null]
  let lo = 0
  let hi = els.length
  if (els.length > 0 && devices.has(els[0]!.name)) {
    ends[0] = devices.get(els[0]!.name)!
    lo = 1
  }
  if (hi - lo > 0 && devices.has(els[hi - 1]!.name)) {
    ends[1] = devices.get(els[hi - 1]!.name)!
    hi--
  }
  const known = [...graph.names(), ...devices.keys()]
  const modules = els.slice(lo, hi).map(e => {
    if (devices.has(e.name)) throw at(e, source, `device '${e.name}' can only stand at either end of a path, not in the middle`)
    const m = graph.get(e.name)
    if (m === undefined) throw at(e, source, `unknown module or device '${e.name}' (modules: ${graph.names().join(', ')}; devices: ${[...devices.keys()].join(', ') || 'none'}).${suggest(e.name, known)}`)
    return { e, m }
  })
  if (modules.length === 0 && ends[0] === null && ends[1] === null) {
    throw new PathSpecError('a path needs at least one module or device', chain.line, 1, source)
  }
  let apex = 0
  for (let i = 1; i < modules.length; i++) if (modules[i]!.m.layer > modules[apex]!.m.layer) apex = i
  const attrs: Record<string, unknown> = { ...opts.attrs }
  const stages: Stage[] = []
  for (let i = 0; i < modules.length; i++) {
    const { e, m } = modules[i]!
    try {
      stages.push(m.createStage({ attrs, args: e.args, up: i <= apex ? Dir.Forward : Dir.Backward, position: i }))
    } catch (err) {
      if (err instanceof PathSpecError && err.line === 0) throw at(e, source, `${m.name}: ${err.message}`)
      throw err
    }
  }
  const path = new Path(stages, { attrs, ...(chain.name !== null ? { name: chain.name } : {}) })
  if (ends[0]) path.connect(0, ends[0])
  if (ends[1]) path.connect(1, ends[1])
  return { path, devices: ends, chain }
}

/** Builds every path of a parsed spec (see {@link buildChain}). */
export function buildSpec(spec: PathSpec, graph: ModuleGraph, devices: ReadonlyMap<string, Device>, opts: { source?: string } = {}): BuiltPath[] {
  return spec.paths.map(c => buildChain(c, graph, devices, opts))
}
