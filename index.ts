/**
 * pathsplice: Scout-style path-based packet processing in TypeScript, with TCP
 * connection splicing. This entry point exports the core framework and the memory
 * driver; protocol stages, paths and the TAP/pcap drivers have entry points of their own.
 * @module pathsplice
 */
export * from './core/bytes.js'
export * from './core/build.js'
export * from './core/checksum.js'
export * from './core/classifier.js'
export * from './core/clock.js'
export * from './core/device.js'
export * from './core/errors.js'
export * from './core/flow-table.js'
export * from './core/ingress.js'
export * from './core/module.js'
export * from './core/msg.js'
export * from './core/path.js'
export * from './core/random.js'
export * from './core/ring.js'
export * from './core/scheduler.js'
export * from './core/seq.js'
export * from './core/spec.js'
export * from './core/stage.js'
export * from './core/timers.js'
export * from './drivers/memory/index.js'
export * from './core/impair.js'
