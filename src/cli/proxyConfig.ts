/**
 * The proxy's configuration from a command line, its environment and a config file, exactly as
 * the `etcd-proxy` command reads them; exported for programs that embed the proxy.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import { buildProxyConfig, type ProxyConfigShape } from "../domain/Config.js"
import { UsageError } from "../domain/Errors.js"
import {
  applyConfigFile,
  ignoredWarning,
  readCommandLine,
  type CommandLine,
} from "./commandLine.js"
import { proxyCommand } from "./commands.js"

/** The configuration, and what the operator should be told about how it was read. */
export interface ResolvedProxyConfig {
  readonly config: ProxyConfigShape
  readonly warnings: ReadonlyArray<string>
}

/** Applies the config file the command line names (if any), then parses every setting. */
export const configFromCommandLine = (
  line: CommandLine,
): Effect.Effect<ResolvedProxyConfig, UsageError, FileSystem.FileSystem> =>
  Effect.gen(function* () {
    let resolved = line
    const configFile = line.settings.get("config-file")
    const file = configFile?.value.trim()
    if (configFile !== undefined && file !== undefined && file !== "") {
      const fs = yield* FileSystem.FileSystem
      const text = yield* fs.readFileString(file).pipe(
        Effect.mapError(
          (error) =>
            new UsageError({
              message: `cannot read ${configFile.label} ${file}: ${error._tag === "SystemError" ? error.reason : error.message}`,
            }),
        ),
      )
      // The YAML parser is loaded only for a config file: most proxies start without one.
      const { parseConfigFile } = yield* Effect.promise(() => import("./configFile.js"))
      const document = yield* parseConfigFile(configFile.label, file, text)
      resolved = yield* applyConfigFile(line, file, document)
    }
    const built = yield* buildProxyConfig(resolved.settings)
    const ignored = ignoredWarning(resolved)
    return {
      config: built.config,
      warnings: [
        ...resolved.warnings,
        ...(ignored === undefined ? [] : [ignored]),
        ...built.warnings,
      ],
    }
  })

/**
 * Builds the proxy's configuration from `argv` (flags only, without the program name), `env` and
 * the config file it may name, with the same flags, variables, defaults, checks and messages as
 * the `etcd-proxy` command. The file is read through the `FileSystem` the caller provides.
 */
export const resolveProxyConfig = (
  argv: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>> = {},
): Effect.Effect<ResolvedProxyConfig, UsageError, FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const line = yield* readCommandLine(proxyCommand, argv, env)
    if (line.builtin !== undefined) {
      return yield* new UsageError({
        message: `--${line.builtin._tag.toLowerCase()} belongs to the etcd-proxy command, not to a configuration`,
      })
    }
    return yield* configFromCommandLine(line)
  })
