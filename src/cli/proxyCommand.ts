/** `etcd-proxy [flags]`: a command line already read, into a running proxy. */
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { LoggingLive } from "../layers/Logging.js"
import { ProxyLive } from "../layers/ProxyLayer.js"
import type { CommandLine } from "./commandLine.js"
import { configFromCommandLine } from "./proxyConfig.js"

export const runProxy = (
  line: CommandLine,
): Effect.Effect<void, unknown, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function* () {
    const { config, warnings } = yield* configFromCommandLine(line)
    return yield* Effect.gen(function* () {
      for (const warning of warnings) yield* Effect.logWarning(warning)
      return yield* Layer.launch(ProxyLive(config))
    }).pipe(Effect.provide(LoggingLive(config.logFormat, config.logLevel, config.logOutputs)))
  })
