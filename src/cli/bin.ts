#!/usr/bin/env -S node --max-semi-space-size=4 --heap-growing-percent=20
/*
 * The node flags above bound memory under load (SPEC §12: RSS ≤ 120 MB at 64 connections): by
 * default V8 lets the heap grow lazily to 200+ MB of garbage before a full collection, with the
 * live heap under 30 MB. Measured with `npm run bench`; throughput is unchanged within noise.
 */
/** The `etcd-proxy` executable: the only place that runs an Effect program. */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { PlatformLive } from "../layers/Platform.js"
import { readCommandLine, type CommandLine } from "./commandLine.js"
import { joinCommand, promoteCommand, proxyCommand } from "./commands.js"

/**
 * Usage errors exit 2, start-up failures 1 (or the code etcd exited with, for `join`), a
 * signal 0.
 */
const exitCode = (exit: Exit.Exit<unknown, unknown>): number => {
  if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return 0
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) {
    const { _tag, exitCode } = failure.value as { _tag?: string; exitCode?: unknown }
    if (_tag === "UsageError") return 2
    if (typeof exitCode === "number" && exitCode > 0 && exitCode < 256) return exitCode
  }
  return 1
}

// SIGHUP must never kill the proxy (SPEC §8.7), also while it starts or drains: Node's default
// for it is to exit. Once running, ReloadOnSighup re-reads the TLS files on it.
process.on("SIGHUP", () => undefined)

const argv = process.argv.slice(2)
const spec =
  argv[0] === "promote" ? promoteCommand : argv[0] === "join" ? joinCommand : proxyCommand

/**
 * A plain proxy start runs straight from the pre-pass: @effect/cli (its parser, help renderer
 * and prompts) costs start-up time and memory that a proxy restarted by systemd should not pay.
 * Help, version, completions and the subcommands load the @effect/cli command tree.
 */
const run = (line: CommandLine): Effect.Effect<void, unknown> =>
  Effect.flatten(
    Effect.promise(async (): Promise<Effect.Effect<void, unknown>> => {
      if (line.builtin === undefined && line.spec === proxyCommand) {
        const { runProxy } = await import("./proxyCommand.js")
        return Effect.provide(runProxy(line), PlatformLive)
      }
      const { runApp } = await import("./app.js")
      return runApp(line, process.env)
    }),
  )

const program: Effect.Effect<void, unknown> = Either.match(
  readCommandLine(spec, argv.slice(spec.path.length), process.env),
  { onLeft: (error) => Effect.fail(error), onRight: run },
)

program.pipe(
  Effect.tapErrorCause((cause) => {
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure)) {
      const error = failure.value as { message?: string }
      return Console.error(`etcd-proxy: ${error.message ?? String(failure.value)}`)
    }
    return Cause.isInterruptedOnly(cause) ? Effect.void : Console.error(Cause.pretty(cause))
  }),
  NodeRuntime.runMain({
    disableErrorReporting: true,
    disablePrettyLogger: true,
    teardown: (exit, onExit) => onExit(exitCode(exit)),
  }),
)
