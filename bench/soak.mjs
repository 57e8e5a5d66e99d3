#!/usr/bin/env node
// A soak (issue 11): a real 3-member etcd, etcd-proxy and etcd's Go proxy side by side under the
// same moderate mixed load, a member restarted every few minutes in turn. It reports failed GETs,
// writes acknowledged / lost / applied twice (checked against the cluster afterwards), and each
// proxy's RSS and open fds at the start, the end and the highest seen. Bounded in time; stops
// everything it started, by PID, also on Ctrl-C.
//
//   node bench/soak.mjs [--minutes 20] [--restart-every 180] [--workers 4]
import { spawn } from "node:child_process"
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { freePort, startCluster, stopProcess } from "../scripts/lib/cluster.mjs"
import { memory } from "./lib/proc.mjs"

const { values: options } = parseArgs({
  options: {
    minutes: { type: "string", default: "20" },
    "restart-every": { type: "string", default: "180" },
    workers: { type: "string", default: "4" },
  },
})
const minutes = Number(options.minutes)
const restartEvery = Number(options["restart-every"]) * 1_000
const workers = Number(options.workers)
const root = mkdtempSync(join(tmpdir(), "etcd-proxy-soak-"))
const bin = join(import.meta.dirname, "..", "dist", "cli", "bin.js")
const started = []
const hardStop = setTimeout(() => finish(1), (minutes + 5) * 60_000)
process.on("SIGINT", () => void finish(130))

const cluster = await startCluster({ size: 3, quiet: true, dir: root })
const proxyFlags = ["--proxy-refresh-interval", "5000", "--proxy-failure-wait", "2000"]

const startTarget = async (name, command, args) => {
  const port = await freePort()
  const child = spawn(
    command,
    [
      ...args,
      "--listen-client-urls",
      `http://127.0.0.1:${port}`,
      "--initial-cluster",
      cluster.initialCluster,
      "--data-dir",
      join(root, name),
      ...proxyFlags,
    ],
    { stdio: "ignore" },
  )
  started.push(child)
  const url = `http://127.0.0.1:${port}`
  for (let i = 0; i < 300; i++) {
    try {
      const answer = await fetch(`${url}/v2/keys/`)
      await answer.text()
      if (answer.ok) break
    } catch {
      // not yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return { name, url, pid: child.pid, samples: [], gets: 0, failedGets: [], writes: [] }
}

const ours = await startTarget("ours", process.execPath, [
  "--max-semi-space-size=4",
  "--heap-growing-percent=20",
  bin,
])
const go = await startTarget("go", "etcd", ["--proxy", "on"])
const targets = [ours, go]

const fds = (pid) => {
  try {
    return readdirSync(`/proc/${pid}/fd`).length
  } catch {
    return NaN
  }
}
const sample = () => {
  for (const target of targets) {
    target.samples.push({
      at: Date.now(),
      rssMb: memory(target.pid)?.rssMb ?? NaN,
      fds: fds(target.pid),
    })
  }
}

const form = { "content-type": "application/x-www-form-urlencoded" }
const stopAt = Date.now() + minutes * 60_000

/** One worker's loop: GETs, and every few requests a PUT, an in-order POST or a v3 put. */
const work = async (target, worker) => {
  for (let i = 0; Date.now() < stopAt; i++) {
    const kind = i % 10
    const id = `${target.name}-${worker}-${i}`
    try {
      if (kind < 7) {
        target.gets += 1
        const answer = await fetch(`${target.url}/v2/keys/soak/read`, {
          signal: AbortSignal.timeout(30_000),
        })
        await answer.text()
        if (answer.status !== 200) target.failedGets.push({ at: Date.now(), status: answer.status })
      } else if (kind === 7) {
        const answer = await fetch(
          `${target.url}/v2/keys/soak/${target.name}/put/${id}?prevExist=false`,
          {
            method: "PUT",
            body: `value=${id}`,
            headers: form,
            signal: AbortSignal.timeout(30_000),
          },
        )
        await answer.text()
        target.writes.push({ kind: "put", id, status: answer.status })
      } else if (kind === 8) {
        const answer = await fetch(`${target.url}/v2/keys/soak/${target.name}/queue`, {
          method: "POST",
          body: `value=${id}`,
          headers: form,
          signal: AbortSignal.timeout(30_000),
        })
        await answer.text()
        target.writes.push({ kind: "post", id, status: answer.status })
      } else {
        const key = Buffer.from(`soak/${target.name}/v3/${id}`).toString("base64")
        const answer = await fetch(`${target.url}/v3/kv/put`, {
          method: "POST",
          body: JSON.stringify({ key, value: Buffer.from(id).toString("base64") }),
          signal: AbortSignal.timeout(30_000),
        })
        await answer.text()
        target.writes.push({ kind: "v3", id, status: answer.status })
      }
    } catch (error) {
      if (kind < 7)
        target.failedGets.push({ at: Date.now(), status: String(error.cause?.code ?? error.name) })
      else target.writes.push({ kind: ["put", "post", "v3"][kind - 7], id, status: 0 })
    }
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

await fetch(`${cluster.clientUrls()[0]}/v2/keys/soak/read`, {
  method: "PUT",
  body: "value=r",
  headers: form,
})
sample()
const sampler = setInterval(sample, 5_000)
const restarts = []
let next = 0
const restarter = setInterval(async () => {
  const i = next++ % 3
  const at = Date.now()
  await cluster.killMember(i)
  await cluster.restartMember(i)
  restarts.push({ member: i, at, back: Date.now() })
}, restartEvery)
console.error(
  `soak: ${minutes} min, ${workers} workers per proxy, a member restart every ${restartEvery / 1000} s`,
)
await Promise.all(
  targets.flatMap((target) => Array.from({ length: workers }, (_, w) => work(target, w))),
)
clearInterval(restarter)
clearInterval(sampler)
sample()

/** Writes acknowledged, lost (acknowledged but absent) and applied twice, from the cluster itself. */
const audit = async (target) => {
  const member = cluster.clientUrls().find(() => true)
  const list = async (path) => {
    const answer = await fetch(`${member}/v2/keys/${path}?recursive=true&quorum=true`)
    const body = await answer.json()
    return (body.node?.nodes ?? []).map((n) => n.value)
  }
  const puts = await list(`soak/${target.name}/put`)
  const queue = await list(`soak/${target.name}/queue`)
  const prefix = Buffer.from(`soak/${target.name}/v3/`).toString("base64")
  const end = Buffer.from(`soak/${target.name}/v30`).toString("base64")
  const range = await fetch(`${member}/v3/kv/range`, {
    method: "POST",
    body: JSON.stringify({ key: prefix, range_end: end }),
  }).then((a) => a.json())
  const v3 = (range.kvs ?? []).map((kv) => Buffer.from(kv.value, "base64").toString())
  const stored = { put: puts, post: queue, v3 }
  const rows = {}
  for (const kind of ["put", "post", "v3"]) {
    const mine = target.writes.filter((w) => w.kind === kind)
    const acked = mine.filter((w) => w.status === 200 || w.status === 201)
    const values = stored[kind]
    rows[kind] = {
      sent: mine.length,
      acknowledged: acked.length,
      lost: acked.filter((w) => !values.includes(w.id)).length,
      doubled: values.length - new Set(values).size,
    }
  }
  return rows
}

const figures = (samples, key) => ({
  start: samples[0][key],
  end: samples.at(-1)[key],
  max: Math.max(...samples.map((s) => s[key]).filter(Number.isFinite)),
})
for (const target of targets) {
  const rss = figures(target.samples, "rssMb")
  const fd = figures(target.samples, "fds")
  console.log(
    JSON.stringify({
      target: target.name,
      minutes,
      restarts: restarts.length,
      gets: target.gets,
      failedGets: target.failedGets.length,
      failedGetStatuses: [...new Set(target.failedGets.map((f) => f.status))],
      writes: await audit(target),
      rssMb: { start: rss.start.toFixed(1), end: rss.end.toFixed(1), max: rss.max.toFixed(1) },
      fds: fd,
    }),
  )
}
await finish(0)

async function finish(code) {
  clearTimeout(hardStop)
  await Promise.all(started.map((child) => stopProcess(child)))
  await cluster.stop()
  rmSync(root, { recursive: true, force: true })
  process.exit(code)
}
