/** Logs (SPEC §8.4): logfmt or JSON lines on stderr through Effect's logger, at the chosen level. */
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import type { LogFormat, LogLevelName } from "../domain/Config.js"

const levels: Record<LogLevelName, LogLevel.LogLevel> = {
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  error: LogLevel.Error,
}

export const LoggingLive = (format: LogFormat, level: LogLevelName): Layer.Layer<never> =>
  Layer.merge(
    Logger.replace(
      Logger.defaultLogger,
      Logger.withConsoleError(format === "json" ? Logger.jsonLogger : Logger.logfmtLogger),
    ),
    Logger.minimumLogLevel(levels[level]),
  )
