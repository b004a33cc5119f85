/**
 * IMPAIR: impairments as a stage (this kernel has no netem).
 * @module
 */
export { ImpairStage, impairModule } from './stage.js'
export type { ImpairOptions } from './stage.js'
