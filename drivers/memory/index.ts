/**
 * The memory driver: in-process devices joined by a wire with seeded impairments.
 * @module
 */
export { MemoryWire, MemoryDevice } from './wire.js'
export type { Impairments, ImpairmentStats, WireStats, WireEndOptions, WireOptions } from './wire.js'
