// One wrk run, bounded in time, with its numbers as JSON (bench/wrk-report.lua) and wrk's own CPU
// seconds (bash's `times` after wrk exits).
import { spawn } from "node:child_process"
import { join } from "node:path"

const luaScript = join(import.meta.dirname, "..", "wrk-report.lua")

/** bash's `times`: two lines "user sys", the shell's and its children's, as `1m2.345s`. */
function childCpu(stderr) {
  const lines = stderr
    .trim()
    .split("\n")
    .filter((line) => /^\d+m[\d.]+s \d+m[\d.]+s$/.test(line.trim()))
  const last = lines.at(-1)
  if (last === undefined) return undefined
  return last
    .trim()
    .split(" ")
    .map((t) => {
      const [, m, s] = /^(\d+)m([\d.]+)s$/.exec(t)
      return Number(m) * 60 + Number(s)
    })
    .reduce((a, b) => a + b, 0)
}

/**
 * Runs wrk against `url` for `seconds` with `connections` keep-alive connections on `threads`
 * threads. `request` is `{ method, body, contentType }`. Resolves with
 * `{ rps, requests, seconds, p50Ms, p90Ms, p99Ms, maxMs, errors, wrkCpuS }`.
 */
export function runWrk(procs, { url, request = {}, seconds, connections, threads = 2 }) {
  const args = [
    "-t",
    String(Math.min(threads, connections)),
    "-c",
    String(connections),
    "-d",
    `${seconds}s`,
    "--timeout",
    "2s",
    "-s",
    luaScript,
    url,
  ]
  return new Promise((resolve, reject) => {
    const child = procs.track(
      spawn("bash", ["-c", 'wrk "$@"; rc=$?; times >&2; exit $rc', "wrk", ...args], {
        stdio: ["ignore", "pipe", "pipe"],
        env: {
          ...process.env,
          BENCH_METHOD: request.method ?? "GET",
          BENCH_BODY: request.body ?? "",
          BENCH_CONTENT_TYPE: request.contentType ?? "",
        },
      }),
    )
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk) => (stdout += chunk))
    child.stderr.on("data", (chunk) => (stderr += chunk))
    // wrk stops itself after `seconds`; this only catches a wrk that hangs.
    const bound = setTimeout(() => child.kill("SIGKILL"), (seconds + 15) * 1_000)
    child.once("error", reject)
    child.once("exit", (code, signal) => {
      clearTimeout(bound)
      const line = stdout.split("\n").find((l) => l.startsWith("BENCH-JSON "))
      if (code !== 0 || line === undefined) {
        reject(new Error(`wrk ${url} failed (${code ?? signal}): ${stderr.trim() || stdout}`))
        return
      }
      const r = JSON.parse(line.slice("BENCH-JSON ".length))
      const wall = r.duration_us / 1e6
      const errors = Object.values(r.errors).reduce((a, b) => a + b, 0)
      resolve({
        rps: r.requests / wall,
        requests: r.requests,
        seconds: wall,
        p50Ms: r.latency_us.p50 / 1_000,
        p90Ms: r.latency_us.p90 / 1_000,
        p99Ms: r.latency_us.p99 / 1_000,
        maxMs: r.latency_us.max / 1_000,
        errors,
        errorKinds: r.errors,
        wrkCpuS: childCpu(stderr),
      })
    })
  })
}
