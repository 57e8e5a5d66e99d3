#!/usr/bin/env node
/** The `etcd-proxy` executable: the only place that runs an Effect program. */
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Cause, Console, Effect, Exit, Option } from "effect"
import { runProxy } from "./proxyCommand.js"

/** Usage errors exit 2 (like every bad flag), start-up failures 1, a signal 0. */
const exitCode = (exit: Exit.Exit<unknown, unknown>): number => {
  if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return 0
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) {
    const tag = (failure.value as { _tag?: string })._tag
    if (tag === "UsageError") return 2
  }
  return 1
}

const argv = process.argv.slice(2)
const program = runProxy(argv, process.env)

program.pipe(
  Effect.tapErrorCause((cause) => {
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure)) {
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
