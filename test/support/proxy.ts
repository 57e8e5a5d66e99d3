/** The built `etcd-proxy` CLI as a child process, for integration tests. */
import { spawn, type ChildProcess } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import { freePort, stopProcess } from "../../scripts/lib/cluster.mjs"

export const binPath = join(import.meta.dirname, "..", "..", "dist", "cli", "bin.js")

/**
 * The node flags the executable's shebang line gives it (`#!/usr/bin/env -S node FLAGS`): the
 * tests run the CLI on `process.execPath` (the Node under test) with the same flags a user's
 * `etcd-proxy` gets, so memory is measured as it runs in production.
 */
const nodeFlags = (): ReadonlyArray<string> => {
  const first = readFileSync(binPath, "utf8").split("\n", 1)[0]!
  const match = /^#!.*\bnode((?:\s+--\S+)*)\s*$/.exec(first)
  return match === null
    ? []
    : match[1]!
        .trim()
        .split(/\s+/)
        .filter((flag) => flag !== "")
}

export interface ProxyProcess {
  readonly url: string
  readonly port: number
  readonly dataDir: string
  readonly child: ChildProcess
  readonly output: () => string
  /** Resolves with the exit code (or signal name) once the process ends. */
  readonly exited: Promise<number | string>
}

export interface ProxyOptions {
  readonly args: ReadonlyArray<string>
  readonly env?: Readonly<Record<string, string>>
  readonly port?: number
  readonly dataDir?: string
  /** Add `--listen-client-urls` and `--data-dir` (default true). */
  readonly defaults?: boolean
  /** The working directory (etcd's default data dir is relative to it). */
  readonly cwd?: string
}

/** Runs the CLI and collects its output; does not wait for anything. */
export const spawnCli = (
  args: ReadonlyArray<string>,
  env: Readonly<Record<string, string>> = {},
  cwd?: string,
) => {
  const child = spawn(process.execPath, [...nodeFlags(), binPath, ...args], {
    ...(cwd === undefined ? {} : { cwd }),
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  })
  let output = ""
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise<number | string>((resolve) =>
    child.once("exit", (code, signal) => resolve(code ?? signal ?? -1)),
  )
  return { child, output: () => output, exited }
}

/** Runs the CLI to its end: exit code and everything it printed. */
export const runCli = (args: ReadonlyArray<string>, env: Readonly<Record<string, string>> = {}) =>
  Effect.promise(async () => {
    const run = spawnCli(args, env)
    const timer = setTimeout(() => run.child.kill("SIGKILL"), 20_000)
    const code = await run.exited
    clearTimeout(timer)
    return { code, output: run.output() }
  })

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Starts the proxy and waits until it serves its config path; stopped (SIGTERM) with the scope. */
export const startProxy = (options: ProxyOptions) =>
  Effect.acquireRelease(
    Effect.promise(async (): Promise<ProxyProcess & { ownsDataDir: boolean }> => {
      const port = options.port ?? (await freePort())
      const ownsDataDir = options.dataDir === undefined
      const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "etcd-proxy-data-"))
      const args =
        options.defaults === false
          ? options.args
          : [
              "--listen-client-urls",
              `http://127.0.0.1:${port}`,
              "--data-dir",
              dataDir,
              ...options.args,
            ]
      const run = spawnCli(args, options.env, options.cwd)
      const url = `http://127.0.0.1:${port}`
      let ended: number | string | undefined
      void run.exited.then((code) => (ended = code))
      const deadline = Date.now() + 20_000
      while (Date.now() < deadline) {
        if (ended !== undefined) {
          throw new Error(`etcd-proxy exited with ${ended} before serving:\n${run.output()}`)
        }
        try {
          const response = await fetch(`${url}/v2/config/local/proxy`)
          await response.text()
          return { ...run, url, port, dataDir, ownsDataDir }
        } catch {
          await sleep(50)
        }
      }
      run.child.kill("SIGKILL")
      throw new Error(`etcd-proxy did not serve within 20 s:\n${run.output()}`)
    }),
    (proxy) =>
      Effect.promise(async () => {
        await stopProcess(proxy.child)
        if (proxy.ownsDataDir) rmSync(proxy.dataDir, { recursive: true, force: true })
      }),
  )

/** A temporary directory removed with the scope. */
export const tempDir = (prefix: string) =>
  Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), prefix))),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true })),
  )
