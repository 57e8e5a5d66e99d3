// The proxies under load: this one (dist/cli/bin.js) and etcd's own Go proxy (`etcd --proxy on`,
// same Debian package as the members); nginx is in ./nginx.mjs, and `direct` is a member itself.
import { spawn } from "node:child_process"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { etcdBinary, freePort, stopProcess } from "../../scripts/lib/cluster.mjs"

const root = join(import.meta.dirname, "..", "..")
export const cliPath = join(root, "dist", "cli", "bin.js")

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Keeps the last lines a process wrote, for error messages; never lets a pipe fill up. */
function keepTail(child) {
  const lines = []
  const keep = (chunk) => {
    lines.push(chunk.toString())
    if (lines.length > 50) lines.shift()
  }
  child.stdout?.on("data", keep)
  child.stderr?.on("data", keep)
  return () => lines.join("").slice(-3000)
}

/** Resolves when the process prints `line` on stdout; rejects when it exits first. */
function waitLine(child, line, tail, timeoutMs = 60_000) {
  return new Promise((resolve, reject) => {
    let seen = ""
    const timer = setTimeout(
      () => reject(new Error(`no "${line}" within ${timeoutMs} ms: ${tail()}`)),
      timeoutMs,
    )
    const onData = (chunk) => {
      seen += chunk
      if (seen.includes(line)) {
        clearTimeout(timer)
        child.stdout.off("data", onData)
        child.off("exit", onExit)
        resolve()
      }
    }
    const onExit = (code) => {
      clearTimeout(timer)
      reject(new Error(`exited (${code}) before "${line}": ${tail()}`))
    }
    child.stdout.on("data", onData)
    child.once("exit", onExit)
  })
}

/**
 * Resolves with the endpoint order a proxy reports at GET /v2/config/local/proxy once it lists
 * at least one endpoint; rejects when the process exits or after `timeoutMs`.
 */
export async function waitProxyReady(url, child, tail, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs
  let last = "no answer"
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`proxy at ${url} exited (${child.exitCode ?? child.signalCode}): ${tail()}`)
    }
    try {
      const response = await fetch(`${url}/v2/config/local/proxy`, {
        signal: AbortSignal.timeout(1_000),
      })
      const body = await response.json()
      if (Array.isArray(body.endpoints) && body.endpoints.length > 0) return body.endpoints
      last = JSON.stringify(body)
    } catch (error) {
      last = String(error?.cause?.code ?? error)
    }
    await sleep(100)
  }
  throw new Error(`proxy at ${url} not ready after ${timeoutMs} ms: ${last}; ${tail()}`)
}

/**
 * The settings both proxies get: the cluster's peer URLs, and a refresh interval longer than the
 * run, so that neither reshuffles its endpoint order (and so its sticky member) mid-benchmark.
 */
export const sharedFlags = (cluster) => [
  "--initial-cluster",
  cluster.initialCluster,
  "--proxy-refresh-interval",
  "600000",
]

/**
 * Starts a proxy process: `{ name, url, pid, child, endpoints, stop }`. `command` and `args` start
 * it; the listen URL and a fresh data dir are added here.
 */
async function startProxy(procs, { name, command, args, env, port, readyLine }) {
  const listen = port ?? (await freePort())
  const url = `http://127.0.0.1:${listen}`
  const dataDir = procs.dir(
    mkdtempSync(join(tmpdir(), `etcd-proxy-bench-${name.replace(/[^a-z0-9]/gi, "")}-`)),
  )
  const child = procs.track(
    spawn(command, [...args, "--listen-client-urls", url, "--data-dir", dataDir], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env },
    }),
  )
  const tail = keepTail(child)
  if (readyLine !== undefined) await waitLine(child, readyLine, tail)
  const endpoints = await waitProxyReady(url, child, tail)
  return { name, url, pid: child.pid, child, endpoints, tail, stop: () => stopProcess(child) }
}

/** etcd's own v2 proxy. */
export const startGoProxy = (procs, cluster, extra = {}) =>
  startProxy(procs, {
    name: "go",
    command: etcdBinary(),
    args: ["--proxy", "on", ...sharedFlags(cluster)],
    ...extra,
  })

/** The node flags the executable's `#!/usr/bin/env -S node ...` line gives it, as users run it. */
export const shebangNodeArgs = (script = cliPath) => {
  const first = readFileSync(script, "utf8").split("\n", 1)[0]
  const match = /^#!\/usr\/bin\/env -S node(.*)$/.exec(first)
  return match === null ? [] : match[1].split(" ").filter((a) => a !== "")
}

/**
 * This proxy, from the build, with its executable's node flags, on `node` (default: the bench's
 * own). `nodeArgs` go to node too (e.g. `--cpu-prof`); `script` replaces the CLI (the two-worker
 * experiment wraps it).
 */
export const startOurProxy = (
  procs,
  cluster,
  { node = process.execPath, nodeArgs = [], script = cliPath, ...extra } = {},
) =>
  startProxy(procs, {
    name: "ours",
    command: node,
    args: [...shebangNodeArgs(), ...nodeArgs, script, ...sharedFlags(cluster)],
    ...extra,
  })

/**
 * Starts this proxy until its sticky (first) endpoint is `wanted`, so that both proxies and the
 * direct runs load the same member (v2 GETs are served by any member, PUTs by the leader through a
 * follower: a different member would be a different benchmark). Gives up after `tries`.
 */
export async function startOurProxyOn(procs, cluster, wanted, tries = 8, options = {}) {
  let proxy
  for (let i = 0; i < tries; i++) {
    proxy = await startOurProxy(procs, cluster, options)
    if (proxy.endpoints[0] === wanted) return { proxy, aligned: true, starts: i + 1 }
    if (i < tries - 1) await proxy.stop()
  }
  return { proxy, aligned: false, starts: tries }
}

/**
 * The two-worker experiment (bench/two-workers.mjs): the CLI in `workers` node:cluster workers on
 * one port, each aligned to the member `wanted`. Its CPU and RSS are the sum over the primary
 * and the workers.
 */
export const startOurWorkers = (
  procs,
  cluster,
  wanted,
  { node = process.execPath, nodeArgs = [], workers = 2 } = {},
) =>
  startProxy(procs, {
    name: `ours×${workers}`,
    command: node,
    args: [
      ...shebangNodeArgs(),
      ...nodeArgs,
      join(import.meta.dirname, "..", "two-workers.mjs"),
      ...sharedFlags(cluster),
    ],
    env: { BENCH_WORKERS: String(workers), BENCH_WANTED_ENDPOINT: wanted },
    readyLine: "BENCH-READY",
  })
