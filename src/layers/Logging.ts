/**
 * Logs (SPEC §8.4) through Effect's logger: JSON lines in etcd's zap shape (`level`, `ts`, `msg`,
 * then every annotation flat) or logfmt lines with the same keys, written to `--log-outputs`.
 */
import { closeSync, openSync, writeSync } from "node:fs"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as List from "effect/List"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import type { LogFormat, LogLevelName } from "../domain/Config.js"
import { UsageError } from "../domain/Errors.js"

const levels: Record<LogLevelName, LogLevel.LogLevel> = {
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  error: LogLevel.Error,
}

/** zap's level names: Effect's Trace counts as debug, Fatal as error. */
export const levelName = (level: LogLevel.LogLevel): LogLevelName =>
  level._tag === "Trace" || level._tag === "Debug"
    ? "debug"
    : level._tag === "Info"
      ? "info"
      : level._tag === "Warning"
        ? "warn"
        : "error"

const text = (value: unknown): string =>
  typeof value === "string" ? value : value instanceof Error ? value.message : safeJson(value)

const safeJson = (value: unknown): string => {
  try {
    return (
      JSON.stringify(value, (_, v: unknown) => (typeof v === "bigint" ? String(v) : v)) ??
      String(value)
    )
  } catch {
    return String(value)
  }
}

const messageText = (message: unknown): string =>
  Array.isArray(message) ? message.map(text).join(" ") : text(message)

/** An annotation as a JSON value: primitives as they are, anything else as plain data. */
const jsonValue = (value: unknown): unknown => {
  if (value === null || ["string", "number", "boolean"].includes(typeof value)) return value
  if (typeof value === "bigint") return String(value)
  if (value instanceof Error) return value.message
  try {
    return JSON.parse(safeJson(value)) as unknown
  } catch {
    return String(value)
  }
}

const reserved = new Set(["level", "ts", "msg", "cause", "fiber"])

/** Annotations in order; one that would hide a fixed key gets a trailing `_`. */
const fields = (annotations: HashMap.HashMap<string, unknown>): Array<[string, unknown]> =>
  [...annotations].map(([key, value]) => [reserved.has(key) ? `${key}_` : key, value])

const causeText = (cause: Cause.Cause<unknown>): string | undefined =>
  Cause.isEmpty(cause) ? undefined : Cause.pretty(cause, { renderErrorCause: true })

/** One JSON line as etcd's zap writes it: `{"level":"info","ts":"...","msg":"...",...fields}`. */
export const zapJsonLogger: Logger.Logger<unknown, string> = Logger.make(
  ({ logLevel, message, annotations, date, cause }) => {
    const line: Record<string, unknown> = {
      level: levelName(logLevel),
      ts: date.toISOString(),
      msg: messageText(message),
    }
    for (const [key, value] of fields(annotations)) line[key] = jsonValue(value)
    const failure = causeText(cause)
    if (failure !== undefined) line["cause"] = failure
    return safeJson(line)
  },
)

const logfmtValue = (value: unknown): string => {
  const s = typeof value === "string" ? value : text(value)
  return s === "" || /[\s"=\\]/.test(s) || /[^\x21-\x7e]/.test(s) ? JSON.stringify(s) : s
}

/**
 * One logfmt line with the JSON keys: `level=info ts=... msg="..." key=value`. Fiber ids and
 * spans are for debugging, so only debug lines carry them.
 */
export const logfmtLogger: Logger.Logger<unknown, string> = Logger.make(
  ({ logLevel, message, annotations, date, cause, fiberId, spans }) => {
    const level = levelName(logLevel)
    const parts = [
      `level=${level}`,
      `ts=${date.toISOString()}`,
      `msg=${logfmtValue(messageText(message))}`,
    ]
    for (const [key, value] of fields(annotations)) parts.push(`${key}=${logfmtValue(value)}`)
    if (level === "debug") {
      parts.push(`fiber=${FiberId.threadName(fiberId)}`)
      const now = date.getTime()
      for (const span of List.toArray(spans)) parts.push(`${span.label}=${now - span.startTime}ms`)
    }
    const failure = causeText(cause)
    if (failure !== undefined) parts.push(`cause=${logfmtValue(failure)}`)
    return parts.join(" ")
  },
)

/** Where `--log-outputs` sends lines: `stderr` (etcd's `default`), `stdout`, or files appended to. */
const openOutputs = (outputs: ReadonlyArray<string>) =>
  Effect.forEach(outputs.length === 0 ? ["stderr"] : outputs, (output) => {
    if (output === "stderr" || output === "default") {
      return Effect.succeed((line: string) => void process.stderr.write(line))
    }
    if (output === "stdout")
      return Effect.succeed((line: string) => void process.stdout.write(line))
    return Effect.acquireRelease(
      Effect.try({
        try: () => openSync(output, "a", 0o640),
        catch: (error) =>
          new UsageError({
            message: `cannot open --log-outputs ${output}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
          }),
      }),
      (fd) => Effect.sync(() => closeSync(fd)),
    ).pipe(
      Effect.map((fd) => (line: string) => {
        // A full disk or a closed file must not take the proxy down with it.
        try {
          writeSync(fd, line)
        } catch {
          return
        }
      }),
    )
  })

export const LoggingLive = (
  format: LogFormat,
  level: LogLevelName,
  outputs: ReadonlyArray<string> = ["stderr"],
): Layer.Layer<never, UsageError> =>
  Layer.unwrapScoped(
    Effect.map(openOutputs(outputs), (writers) => {
      const formatter = format === "json" ? zapJsonLogger : logfmtLogger
      // Written synchronously (stdio and files): lines stay whole and in order, and the last
      // ones before an exit are not lost; the proxy logs events, never requests, so this is cheap.
      const logger = Logger.map(formatter, (line) => {
        for (const write of writers) write(`${line}\n`)
      })
      return Layer.merge(
        Logger.replace(Logger.defaultLogger, logger),
        Logger.minimumLogLevel(levels[level]),
      )
    }),
  )
