/** The proxy's state on disk (SPEC §7): `<data-dir>/proxy/cluster`, its lock, and the member guard. */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import type { PlatformError } from "@effect/platform/Error"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { ProxyConfig } from "../domain/Config.js"
import { StartupError } from "../domain/Errors.js"
import { decodeClusterFile, encodeClusterFile } from "../domain/Member.js"

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** The pid of a live proxy holding `<data-dir>/proxy/lock`, if any. */
export const lockHolder = Effect.fn("DataDir.lockHolder")(function* (dataDir: string) {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const text = yield* fs
    .readFileString(path.join(dataDir, "proxy", "lock"))
    .pipe(Effect.orElseSucceed(() => ""))
  const pid = Number(text.trim())
  return Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)
    ? Option.some(pid)
    : Option.none<number>()
})

const startupError = (message: string) => (cause: unknown) => new StartupError({ message, cause })

export class DataDir extends Effect.Service<DataDir>()("etcd-proxy/DataDir", {
  scoped: Effect.gen(function* () {
    const { dataDir } = yield* ProxyConfig
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const proxyDir = path.join(dataDir, "proxy")
    const clusterFile = path.join(proxyDir, "cluster")
    const lockFile = path.join(proxyDir, "lock")

    if (yield* fs.exists(path.join(dataDir, "member")).pipe(Effect.orElseSucceed(() => false))) {
      return yield* new StartupError({
        message: `data dir ${dataDir} holds member/: it belongs to an etcd member, not a proxy; choose another --data-dir`,
      })
    }
    yield* fs
      .makeDirectory(proxyDir, { recursive: true, mode: 0o700 })
      .pipe(Effect.mapError(startupError(`cannot create ${proxyDir}`)))
    yield* fs.chmod(proxyDir, 0o700).pipe(Effect.mapError(startupError(`cannot chmod ${proxyDir}`)))

    const inUse = (pid: number) =>
      new StartupError({
        message: `data dir ${dataDir} is in use by another etcd-proxy (pid ${pid}); stop it or choose another --data-dir`,
      })
    const createLock = fs.writeFileString(lockFile, String(process.pid), {
      flag: "wx",
      mode: 0o600,
    })
    // Exclusive create; a lock left by a proxy that died is taken over.
    const takeLock = createLock.pipe(
      Effect.catchIf(
        (error) => error._tag === "SystemError" && error.reason === "AlreadyExists",
        () =>
          Effect.flatMap(lockHolder(dataDir), (holder) =>
            Option.isSome(holder)
              ? Effect.fail<StartupError | PlatformError>(inUse(holder.value))
              : fs.remove(lockFile).pipe(Effect.zipRight(createLock)),
          ),
      ),
      Effect.mapError((error) =>
        error instanceof StartupError ? error : startupError(`cannot write ${lockFile}`)(error),
      ),
    )
    yield* Effect.acquireRelease(takeLock, () => fs.remove(lockFile).pipe(Effect.ignore))

    const readCluster: Effect.Effect<
      Option.Option<ReadonlyArray<string>>,
      StartupError
    > = Effect.gen(function* () {
      if (!(yield* fs.exists(clusterFile).pipe(Effect.orElseSucceed(() => false)))) {
        return Option.none()
      }
      const text = yield* fs
        .readFileString(clusterFile)
        .pipe(Effect.mapError(startupError(`cannot read ${clusterFile}`)))
      const decoded = decodeClusterFile(text)
      if (decoded._tag === "Left" || decoded.right.length === 0) {
        yield* Effect.logWarning("ignoring an unreadable saved cluster file").pipe(
          Effect.annotateLogs({
            file: clusterFile,
            error: decoded._tag === "Left" ? decoded.left : "no peer URLs",
          }),
        )
        return Option.none()
      }
      return Option.some(decoded.right)
    })

    /** Temp file, fsync, rename: a crash leaves the old file or the new one, never half of one. */
    const writeCluster = (peerUrls: ReadonlyArray<string>): Effect.Effect<void, StartupError> =>
      Effect.scoped(
        Effect.gen(function* () {
          const temp = `${clusterFile}.tmp`
          const file = yield* fs.open(temp, { flag: "w", mode: 0o600 })
          yield* file.write(new TextEncoder().encode(encodeClusterFile(peerUrls)))
          yield* file.sync
          yield* fs.rename(temp, clusterFile)
        }),
      ).pipe(Effect.mapError(startupError(`cannot write ${clusterFile}`)))

    return { dataDir, proxyDir, clusterFile, readCluster, writeCluster } as const
  }),
}) {}
