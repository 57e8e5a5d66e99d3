#!/usr/bin/env -S node --max-semi-space-size=4 --heap-growing-percent=20
/*
 * The node flags above bound memory under load (SPEC §12: RSS ≤ 120 MB at 64 connections): by
 * default V8 lets the heap grow lazily to 200+ MB of garbage before a full collection, with the
 * live heap under 30 MB. Measured with `npm run bench`; throughput is unchanged within noise.
 */
/** The `etcd-proxy` executable: the only place that runs an Effect program. */
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { PlatformLive } from "../layers/Platform.js"

/**
 * Usage errors exit 2 (like every bad flag, @effect/cli's included), start-up failures 1 (or the
 * code etcd exited with, for `join`), a signal 0.
 */
const exitCode = (exit: Exit.Exit<unknown, unknown>): number => {
  if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return 0
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) {
    if (ValidationError.isValidationError(failure.value)) return 2
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

/** Each command loads only its own modules: the proxy never pays for @effect/cli's. */
const program: Effect.Effect<void, unknown> = Effect.flatten(
  Effect.promise(async (): Promise<Effect.Effect<void, unknown>> => {
    switch (argv[0]) {
      case "promote": {
        const [{ runPromote }, NodeContext] = await Promise.all([
          import("./promote.js"),
          import("@effect/platform-node/NodeContext"),
        ])
        return Effect.provide(runPromote(argv.slice(1)), NodeContext.layer)
      }
      case "join": {
        const { runJoin } = await import("./join.js")
        return Effect.provide(runJoin(argv.slice(1), process.env), PlatformLive)
      }
      default: {
        const { runProxy } = await import("./proxyCommand.js")
        return Effect.provide(runProxy(argv, process.env), PlatformLive)
      }
    }
  }),
)

program.pipe(
  Effect.tapErrorCause((cause) => {
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure)) {
      // @effect/cli has printed its own message for these already.
      if (ValidationError.isValidationError(failure.value)) return Effect.void
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
