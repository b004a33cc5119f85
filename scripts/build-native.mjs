// Builds the native TAP addon (drivers/tap/native) with @napi-rs/cli when its sources exist.
import { existsSync } from 'node:fs'
if (!existsSync(new URL('../drivers/tap/native/Cargo.toml', import.meta.url))) process.exit(0)
