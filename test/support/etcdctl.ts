/** The real `etcdctl` (Debian etcd-client 3.4), run as a user would, for integration tests. */
import { execFile, spawn, spawnSync } from "node:child_process"
import * as Effect from "effect/Effect"
import { stopProcess } from "../../scripts/lib/cluster.mjs"

/** The etcdctl binary, or a loud error that says how to install it. */
export const etcdctlBinary = (): string => {
  const bin = process.env["ETCDCTL_BIN"] ?? "etcdctl"
  const probe = spawnSync(bin, ["version"], { encoding: "utf8", env: { ETCDCTL_API: "3" } })
  if (probe.error !== undefined || probe.status !== 0) {
    throw new Error(
      `etcdctl not found (${bin}): install it with "apt-get install -y etcd-client" ` +
        `(Debian package etcd-client, 3.4), or set ETCDCTL_BIN`,
    )
  }
  return bin
}

export interface EtcdctlResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

export interface EtcdctlOptions {
  /** ETCDCTL_API, 3 unless said. */
  readonly api?: 2 | 3
  readonly input?: string
  readonly timeoutMs?: number
}

const envFor = (api: 2 | 3): NodeJS.ProcessEnv => ({
  PATH: process.env["PATH"] ?? "",
  HOME: process.env["HOME"] ?? "/tmp",
  ETCDCTL_API: String(api),
})

/** Runs etcdctl to its end (killed after `timeoutMs`): exit code and both outputs. */
export const etcdctl = (args: ReadonlyArray<string>, options: EtcdctlOptions = {}) =>
  Effect.async<EtcdctlResult>((resume) => {
    const child = execFile(
      etcdctlBinary(),
      [...args],
      {
        env: envFor(options.api ?? 3),
        timeout: options.timeoutMs ?? 15_000,
        killSignal: "SIGKILL",
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1
        resume(Effect.succeed({ code, stdout, stderr }))
      },
    )
    // etcdctl may exit before it reads its input (a bad flag): no EPIPE for the test to trip on.
    child.stdin?.on("error", () => undefined)
    child.stdin?.end(options.input ?? "")
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/** A long-running etcdctl (watch, keep-alive), stopped with the scope. */
export interface EtcdctlProcess {
  readonly output: () => string
  /** Waits until the output contains `text`; fails with the output so far after `timeoutMs`. */
  readonly waitFor: (text: string, timeoutMs?: number) => Effect.Effect<void, Error>
  readonly exited: Promise<number | string>
}

export const spawnEtcdctl = (args: ReadonlyArray<string>, options: EtcdctlOptions = {}) =>
  Effect.acquireRelease(
    Effect.sync((): EtcdctlProcess & { readonly stop: () => Promise<void> } => {
      const child = spawn(etcdctlBinary(), [...args], {
        env: envFor(options.api ?? 3),
        stdio: ["ignore", "pipe", "pipe"],
      })
      let output = ""
      child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
      child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
      const exited = new Promise<number | string>((resolve) =>
        child.once("exit", (code, signal) => resolve(code ?? signal ?? -1)),
      )
      const waitFor = (text: string, timeoutMs = 10_000) =>
        Effect.gen(function* () {
          const deadline = Date.now() + timeoutMs
          while (!output.includes(text)) {
            if (Date.now() > deadline) {
              return yield* Effect.fail(
                new Error(
                  `etcdctl ${args.join(" ")}: no "${text}" within ${timeoutMs} ms:\n${output}`,
                ),
              )
            }
            yield* Effect.sleep("50 millis")
          }
        })
      return { output: () => output, waitFor, exited, stop: () => stopProcess(child, 2_000) }
    }),
    (process) => Effect.promise(() => process.stop()),
  )

/**
 * `etcdctl put` straight to a member, retried while a leader election right after a member was
 * killed makes it time out.
 */
export const putRetrying = (endpoint: string, key: string, value: string) =>
  etcdctl(["--endpoints", endpoint, "--command-timeout", "3s", "put", key, value]).pipe(
    Effect.flatMap((r) => (r.code === 0 ? Effect.void : Effect.fail(r.stderr))),
    Effect.retry({ times: 5 }),
  )
