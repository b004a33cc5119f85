/**
 * Module and module graph: a module is a protocol or service (ETH, IP, TCP, PROXY, FWD ...);
 * modules form a graph (IP above ETH, TCP above IP). A path is created by walking the
 * graph, as Scout's `path_create` does: each module crossed contributes a stage built from
 * the path's attributes, and decides which module comes next.
 * @module
 */
import { PathSpecError } from './errors.js'
import { Path } from './path.js'
import type { Dir, Stage } from './stage.js'

/** Arguments given to a module in a path spec, e.g. `PROXY(socks5, port=1080)`. */
export interface StageArgs {
  /** Positional arguments, in order. */
  positional: string[]
  /** Named arguments. */
  named: Record<string, string>
}

/** What a module's stage factory gets. */
export interface StageContext {
  /** Attributes of the path being built (Scout's participants); factories may add to them. */
  attrs: Record<string, unknown>
  /** Arguments from the path spec (empty when walking the graph). */
  args: StageArgs
  /** The direction that is "up the stack" for the new stage (see {@link Stage.up}). */
  up: Dir
  /** Position of the new stage in the path being built. */
  position: number
}

/** A protocol or service that contributes stages to paths. */
export interface Module {
  /** Name as written in path specs (`ETH`, `IP`, `TCP`, `PROXY`, `FWD`, `IPFWD`). */
  readonly name: string
  /** One line for `pathsplice paths` and errors. */
  readonly summary: string
  /**
   * Protocol layer (2 link, 3 network, 4 transport, 7 application). A spec-built path
   * climbs to its highest layer and descends after it; stages before that apex see
   * incoming traffic travel forward (`up = Forward`), stages after it backward.
   */
  readonly layer: number
  /** Modules this one may hand paths to when walking the graph (for dumps). */
  readonly above?: readonly string[]
  /**
   * Creates this module's stage for a path. Throw {@link PathSpecError} (without position;
   * the builder adds it) for bad arguments, saying what is accepted.
   */
  createStage(ctx: StageContext): Stage
  /** During a graph walk: the next module's name, or null to end the path here. */
  next?(attrs: Record<string, unknown>): string | null
}

/** A registry of modules by name, with the walk that creates paths. */
export class ModuleGraph {
  private readonly modules = new Map<string, Module>()

  /** Registers `module` (names are case-insensitive); replaces one of the same name. */
  add(module: Module): this {
    this.modules.set(module.name.toUpperCase(), module)
    return this
  }

  /** The module called `name` (case-insensitive), or undefined. */
  get(name: string): Module | undefined {
    return this.modules.get(name.toUpperCase())
  }

  /** Registered module names. */
  names(): string[] {
    return [...this.modules.values()].map(m => m.name)
  }

  /**
   * Creates a path by walking the graph from `start` (Scout's path_create): each module
   * builds its stage from `attrs` and names the next, until one says null.
   */
  createPath(start: string, attrs: Record<string, unknown> = {}, opts: { name?: string; up?: Dir; maxStages?: number } = {}): Path {
    const stages: Stage[] = []
    const max = opts.maxStages ?? 32
    let name: string | null = start
    while (name !== null) {
      const m = this.get(name)
      if (m === undefined) throw new PathSpecError(`unknown module '${name}' while walking the module graph (known: ${this.names().join(', ')})`)
      if (stages.length >= max) throw new PathSpecError(`module graph walk from '${start}' exceeded ${max} stages (a cycle?)`)
      stages.push(m.createStage({ attrs, args: { positional: [], named: {} }, up: opts.up ?? 0, position: stages.length }))
      name = m.next ? m.next(attrs) : null
    }
    return new Path(stages, { attrs, ...(opts.name !== undefined ? { name: opts.name } : {}) })
  }

  /** The graph as text: one line per module with what it sits below. */
  describe(): string {
    const lines = ['modules']
    for (const m of this.modules.values()) {
      lines.push(`  ${m.name.padEnd(8)} ${m.summary}${m.above && m.above.length > 0 ? `  (-> ${m.above.join(', ')})` : ''}`)
    }
    return lines.join('\n')
  }
}
