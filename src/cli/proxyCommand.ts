/** `etcd-proxy [flags]`: flags, `ETCD_*` or a config file, into a running proxy. */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import type { ProxyConfigShape } from "../domain/Config.js"
import { UsageError } from "../domain/Errors.js"
import { LoggingLive } from "../layers/Logging.js"
import { ProxyLive } from "../layers/ProxyLayer.js"
import {
  buildConfig,
  envName,
  helpText,
  mergeEnv,
  proxyFlags,
  readArgv,
  readConfigFile,
} from "./flags.js"
import { version } from "./version.js"

const summary = `etcd-proxy ${version}: a transparent proxy for etcd clusters (v2 keys API, v3 JSON gateway, v3 gRPC).`

export type ProxyInvocation =
  | { readonly _tag: "Help" }
  | { readonly _tag: "Version" }
  | {
      readonly _tag: "Run"
      readonly config: ProxyConfigShape
      readonly warnings: ReadonlyArray<string>
    }

/** Resolves the command line, the environment and an optional config file into a configuration. */
export const resolveProxyConfig = (
  argv: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>,
) =>
  Effect.gen(function* () {
    const args = yield* readArgv(proxyFlags, argv)
    if (args.help) return { _tag: "Help" } as ProxyInvocation
    if (args.version) return { _tag: "Version" } as ProxyInvocation
    const merged = yield* mergeEnv(proxyFlags, args.values, env)
    const configFile = merged.values.get("config-file")
    let values = merged.values
    const warnings = [...merged.warnings]
    if (configFile !== undefined) {
      const fs = yield* FileSystem.FileSystem
      const text = yield* fs.readFileString(configFile).pipe(
        Effect.mapError(
          (error) =>
            new UsageError({
              message: `cannot read --config-file ${configFile}: ${error._tag === "SystemError" ? error.reason : error.message}`,
            }),
        ),
      )
      const fromFile = yield* readConfigFile(proxyFlags, configFile, text)
      const ignored = [...merged.values.keys()].filter((flag) => flag !== "config-file")
      if (ignored.length > 0) {
        warnings.push(
          `--config-file is set: ignoring ${ignored.map((f) => `--${f}/${envName(f)}`).join(", ")}, as etcd does`,
        )
      }
      values = fromFile.values
      warnings.push(...fromFile.warnings)
    }
    const config = yield* Either.match(buildConfig(values), {
      onLeft: (error) => Effect.fail(error),
      onRight: (config) => Effect.succeed(config),
    })
    return { _tag: "Run", config, warnings } as ProxyInvocation
  })

export const proxyHelp = helpText(
  [
    "etcd-proxy [flags]",
    "       etcd-proxy promote --endpoints URL[,URL] --name NAME --peer-urls URL[,URL] --data-dir DIR [--listen-client-urls URL] [--advertise-client-urls URL] [--exec] [--etcd-bin PATH]",
    "           make this proxy's machine an etcd member (stop the proxy first); --help for details",
    "       etcd-proxy join --discovery URL [--discovery-fallback proxy|exit] [--etcd-bin PATH] [--proxy-* flags] [etcd member flags...]",
    "           start etcd as a member through discovery; a proxy when the cluster is full",
  ].join("\n"),
  summary,
  proxyFlags,
)

export const runProxy = (
  argv: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>,
) =>
  Effect.gen(function* () {
    const invocation = yield* resolveProxyConfig(argv, env)
    switch (invocation._tag) {
      case "Help":
        return yield* Console.log(proxyHelp)
      case "Version":
        return yield* Console.log(`etcd-proxy ${version}`)
      case "Run": {
        const { config, warnings } = invocation
        const logging = LoggingLive(config.logFormat, config.logLevel, config.logOutputs)
        return yield* Effect.gen(function* () {
          for (const warning of warnings) yield* Effect.logWarning(warning)
          yield* Layer.launch(ProxyLive(config))
        }).pipe(Effect.provide(logging))
      }
    }
  })
