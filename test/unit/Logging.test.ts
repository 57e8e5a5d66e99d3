/** Log lines (SPEC §8.4): etcd's zap JSON shape, logfmt without fiber ids, `--log-outputs` files. */
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { LoggingLive, logfmtLogger, zapJsonLogger } from "../../src/layers/Logging.js"

/** Runs `program` with `logger` alone and returns the lines it made. */
const linesOf = (logger: Logger.Logger<unknown, string>, program: Effect.Effect<void>) =>
  Effect.gen(function* () {
    const lines: Array<string> = []
    yield* program.pipe(
      Effect.provide(
        Logger.replace(
          Logger.defaultLogger,
          Logger.map(logger, (line) => void lines.push(line)),
        ),
      ),
      Logger.withMinimumLogLevel(LogLevel.Debug),
    )
    return lines
  })

const event = Effect.logWarning("endpoint marked failed").pipe(
  Effect.annotateLogs({
    member: "infra1",
    endpoint: "http://10.0.1.11:2379",
    attempt: 2,
    error: "ECONNREFUSED",
  }),
  Effect.withLogSpan("refresh"),
)

describe("zap JSON lines", () => {
  it.effect("level, ts (RFC 3339), msg first, then every annotation flat", () =>
    Effect.gen(function* () {
      const [line] = yield* linesOf(zapJsonLogger, event)
      // TestClock: the time is the epoch. Annotations come in Effect's HashMap order.
      expect(line).toMatch(
        /^\{"level":"warn","ts":"1970-01-01T00:00:00.000Z","msg":"endpoint marked failed",/,
      )
      expect(JSON.parse(line!)).toStrictEqual({
        level: "warn",
        ts: "1970-01-01T00:00:00.000Z",
        msg: "endpoint marked failed",
        member: "infra1",
        endpoint: "http://10.0.1.11:2379",
        attempt: 2,
        error: "ECONNREFUSED",
      })
    }),
  )

  it.effect("zap's level names; an annotation never hides a fixed key; a cause is a string", () =>
    Effect.gen(function* () {
      const lines = yield* linesOf(
        zapJsonLogger,
        Effect.gen(function* () {
          yield* Effect.logDebug("d")
          yield* Effect.logInfo("i", "and more")
          yield* Effect.logError("e").pipe(Effect.annotateLogs({ level: "x", msg: "y" }))
          yield* Effect.logFatal("f")
          yield* Effect.fail(new Error("boom")).pipe(
            Effect.tapErrorCause((cause) => Effect.logError("failed", cause)),
            Effect.ignore,
          )
        }),
      )
      const parsed = lines.map((line) => JSON.parse(line) as Record<string, unknown>)
      expect(parsed.map((p) => p["level"])).toEqual(["debug", "info", "error", "error", "error"])
      expect(parsed[1]!["msg"]).toBe("i and more")
      expect(parsed[2]).toMatchObject({ level: "error", msg: "e", level_: "x", msg_: "y" })
      expect(parsed[4]!["cause"]).toContain("boom")
      for (const p of parsed) {
        expect(Object.keys(p).slice(0, 3)).toEqual(["level", "ts", "msg"])
        expect(p).not.toHaveProperty("annotations")
        expect(p).not.toHaveProperty("spans")
        expect(p).not.toHaveProperty("fiberId")
      }
    }),
  )
})

describe("logfmt lines", () => {
  it.effect("the same keys, quoted where needed, no fiber id or span at info", () =>
    Effect.gen(function* () {
      const [line] = yield* linesOf(
        logfmtLogger,
        Effect.logInfo("member list changed").pipe(
          Effect.annotateLogs({ added: "b=http://10.0.0.2:2379", removed: "", note: 'say "hi"' }),
          Effect.withLogSpan("refresh"),
        ),
      )
      expect(line).toBe(
        'level=info ts=1970-01-01T00:00:00.000Z msg="member list changed" added="b=http://10.0.0.2:2379" removed="" note="say \\"hi\\""',
      )
    }),
  )

  it.effect("debug lines carry the fiber and the spans", () =>
    Effect.gen(function* () {
      const [line] = yield* linesOf(
        logfmtLogger,
        Effect.logDebug("probe").pipe(Effect.withLogSpan("revive")),
      )
      expect(line).toMatch(/^level=debug ts=\S+ msg=probe fiber=#\d+ revive=0ms$/)
    }),
  )
})

/** Its own root fiber: a logger a layer installs stays out of the test's fiber. */
const isolated = <E>(program: Effect.Effect<void, E>) =>
  Effect.promise(() => Effect.runPromiseExit(program))

describe("--log-outputs", () => {
  it.effect("appends whole lines to every file named, and refuses a file it cannot open", () =>
    Effect.gen(function* () {
      const dir = mkdtempSync(join(tmpdir(), "etcd-proxy-logs-"))
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => rmSync(dir, { recursive: true, force: true })),
      )
      const a = join(dir, "a.log")
      const b = join(dir, "b.log")
      const log = Effect.logInfo("one").pipe(
        Effect.zipRight(Effect.logDebug("hidden")),
        Effect.zipRight(Effect.logWarning("two")),
      )
      yield* isolated(Effect.provide(log, LoggingLive("json", "info", [a, b])))
      yield* isolated(Effect.provide(Effect.logInfo("three"), LoggingLive("text", "info", [a])))
      const first = readFileSync(a, "utf8").split("\n")
      expect(first.slice(0, 2).map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual([
        "one",
        "two",
      ])
      expect(first[2]).toMatch(/^level=info ts=\S+ msg=three$/)
      expect(first[3]).toBe("")
      expect(readFileSync(b, "utf8").trim().split("\n")).toHaveLength(2)

      const missing = join(dir, "no-such-dir", "x.log")
      const exit = yield* isolated(
        Effect.provide(Effect.void, LoggingLive("json", "info", [missing])),
      )
      expect(Exit.isFailure(exit) && JSON.stringify(exit.cause)).toContain(
        `cannot open --log-outputs ${missing}: ENOENT`,
      )
    }).pipe(Effect.scoped),
  )
})
