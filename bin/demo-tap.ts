/** placeholder */
import type { DemoOptions } from './demo.js'
/** Runs the demo with kernel peers. */
export async function runTapDemo(_o: DemoOptions): Promise<boolean> { return false }
