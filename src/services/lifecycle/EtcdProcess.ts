/** The real `etcd` binary as a child process, for `promote --exec` and `join` (SPEC §9.4, §10). */
import { spawn } from "node:child_process"
import { accessSync, constants, statSync } from "node:fs"
import { delimiter, isAbsolute, join } from "node:path"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"

/** No etcd to run: says how to get one. */
export class EtcdNotFound extends Data.TaggedError("EtcdNotFound")<{ readonly looked: string }> {
  override get message(): string {
    return `etcd not found (${this.looked}): install it with "apt-get install etcd-server" (Debian; etcd 3.4), or pass --etcd-bin PATH`
  }
}

export interface EtcdExit {
  /** Exit code, or undefined when a signal ended it. */
  readonly code: number | undefined
  readonly signal: string | undefined
  /** The last part of what etcd wrote to stderr (when it was captured). */
  readonly stderrTail: string
}

export interface RunningEtcd {
  readonly pid: number
  /** Resolves when etcd has exited. */
  readonly exited: Effect.Effect<EtcdExit>
}

const isExecutable = (file: string): boolean => {
  try {
    accessSync(file, constants.X_OK)
    return statSync(file).isFile()
  } catch {
    return false
  }
}

/** `--etcd-bin` as given, else `etcd` on `PATH`. */
export const locateEtcd = (
  given: Option.Option<string>,
  path: string | undefined = process.env["PATH"],
): Effect.Effect<string, EtcdNotFound> =>
  Effect.suspend(() => {
    if (Option.isSome(given)) {
      const bin = given.value
      if (bin.includes("/") || isAbsolute(bin)) {
        return isExecutable(bin)
          ? Effect.succeed(bin)
          : Effect.fail(new EtcdNotFound({ looked: `--etcd-bin ${bin} is not an executable file` }))
      }
      return locateIn(bin, path)
    }
    return locateIn("etcd", path)
  })

const locateIn = (name: string, path: string | undefined): Effect.Effect<string, EtcdNotFound> => {
  for (const dir of (path ?? "").split(delimiter)) {
    if (dir === "") continue
    const candidate = join(dir, name)
    if (isExecutable(candidate)) return Effect.succeed(candidate)
  }
  return Effect.fail(new EtcdNotFound({ looked: `no ${name} on PATH` }))
}

/** Keeps the end of a stream of text, so a failure reason etcd printed last can be found. */
const tail = (limit: number) => {
  let text = ""
  return {
    push: (chunk: string) => {
      text = (text + chunk).slice(-limit)
    },
    get: () => text,
  }
}

/**
 * Starts etcd; the scope stops it (SIGTERM, then SIGKILL after `graceMs`). stdout is shared with
 * ours; stderr too, and also captured when `captureStderr` is set so the caller can read the reason
 * etcd gave for exiting.
 */
export const startEtcd = (
  bin: string,
  args: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>,
  options: { readonly captureStderr?: boolean; readonly graceMs?: number } = {},
): Effect.Effect<RunningEtcd, EtcdNotFound, Scope.Scope> =>
  Effect.gen(function* () {
    const done = yield* Deferred.make<EtcdExit>()
    const stderr = tail(64 * 1024)
    const child = yield* Effect.acquireRelease(
      Effect.async<ReturnType<typeof spawn>, EtcdNotFound>((resume) => {
        const child = spawn(bin, [...args], {
          env: env as NodeJS.ProcessEnv,
          stdio: ["ignore", "inherit", options.captureStderr === true ? "pipe" : "inherit"],
        })
        child.stderr?.on("data", (chunk: Buffer) => {
          process.stderr.write(chunk)
          stderr.push(chunk.toString())
        })
        child.once("exit", (code, signal) =>
          Deferred.unsafeDone(
            done,
            Effect.succeed({
              code: code ?? undefined,
              signal: signal ?? undefined,
              stderrTail: stderr.get(),
            }),
          ),
        )
        child.once("error", (error) =>
          resume(Effect.fail(new EtcdNotFound({ looked: `${bin}: ${error.message}` }))),
        )
        child.once("spawn", () => resume(Effect.succeed(child)))
      }),
      (child) =>
        Effect.gen(function* () {
          if (child.exitCode !== null || child.signalCode !== null) return
          child.kill("SIGTERM")
          const exited = yield* Deferred.await(done).pipe(
            Effect.timeout(options.graceMs ?? 10_000),
            Effect.option,
          )
          if (Option.isNone(exited)) {
            child.kill("SIGKILL")
            yield* Deferred.await(done)
          }
        }),
    )
    return { pid: child.pid ?? -1, exited: Deferred.await(done) }
  })

/** The environment etcd gets: ours without any `ETCD_*` (a proxy's settings would mislead it), plus `extra`. */
export const memberEnv = (
  base: Readonly<Record<string, string | undefined>>,
  extra: Readonly<Record<string, string>>,
  keep: (variable: string) => boolean = () => false,
): { readonly env: Record<string, string>; readonly dropped: ReadonlyArray<string> } => {
  const env: Record<string, string> = {}
  const dropped: Array<string> = []
  for (const [key, value] of Object.entries(base)) {
    if (value === undefined) continue
    if (key.startsWith("ETCD_") && !keep(key)) dropped.push(key)
    else env[key] = value
  }
  return { env: { ...env, ...extra }, dropped: dropped.sort() }
}
