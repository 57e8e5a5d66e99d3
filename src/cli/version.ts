/** The package version, read from package.json so that `--version` never drifts. */
import { createRequire } from "node:module"

export const version: string = (
  createRequire(import.meta.url)("../../package.json") as { version: string }
).version
