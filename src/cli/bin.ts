#!/usr/bin/env node
/** The `etcd-proxy` executable: the only place that runs an Effect program. */
import { ValidationError } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Cause, Console, Effect, Exit, Option } from "effect"
import { runJoin } from "./join.js"
import { runProxy } from "./proxyCommand.js"
import { runPromote } from "./promote.js"

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

const argv = process.argv.slice(2)
const program: Effect.Effect<void, unknown, NodeContext.NodeContext> =
  argv[0] === "promote"
    ? runPromote(argv.slice(1))
    : argv[0] === "join"
      ? runJoin(argv.slice(1), process.env)
      : runProxy(argv, process.env)

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
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({
    disableErrorReporting: true,
    disablePrettyLogger: true,
    teardown: (exit, onExit) => onExit(exitCode(exit)),
  }),
)
