// Medians over rounds, the printed table, and the SPEC §12 targets checked against the numbers.

export function median(values) {
  const xs = values.filter((v) => typeof v === "number" && Number.isFinite(v)).sort((a, b) => a - b)
  if (xs.length === 0) return undefined
  const mid = Math.floor(xs.length / 2)
  return xs.length % 2 === 1 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2
}

const max = (values) => {
  const xs = values.filter((v) => typeof v === "number" && Number.isFinite(v))
  return xs.length === 0 ? undefined : Math.max(...xs)
}

const sum = (values) => values.reduce((a, v) => a + (typeof v === "number" ? v : 0), 0)

/** The summary of one load scenario for one target over its rounds. */
export function summariseLoad(rounds) {
  return {
    rps: median(rounds.map((r) => r.rps)),
    p50Ms: median(rounds.map((r) => r.p50Ms)),
    p99Ms: median(rounds.map((r) => r.p99Ms)),
    errors: sum(rounds.map((r) => r.errors)),
    cpuS: median(rounds.map((r) => r.proxy?.cpuS)),
    sysPct: median(
      rounds.map((r) => (r.proxy?.cpuS > 0 ? (100 * r.proxy.sysS) / r.proxy.cpuS : undefined)),
    ),
    cpuUsPerReq: median(
      rounds.map((r) =>
        r.proxy?.cpuS === undefined ? undefined : (r.proxy.cpuS / r.requests) * 1e6,
      ),
    ),
    runQueueWaitS: median(rounds.map((r) => r.proxy?.runQueueWaitS)),
    peakRssMb: max(rounds.map((r) => r.proxy?.peakRssMb)),
    etcdCpuS: median(rounds.map((r) => r.etcdCpuS)),
    wrkCpuS: median(rounds.map((r) => r.wrkCpuS)),
    rpsPerRound: rounds.map((r) => Math.round(r.rps)),
  }
}

/** The summary of one watch mode for one target over its rounds. */
export function summariseWatch(rounds) {
  return {
    delivered: sum(rounds.map((r) => r.delivered)),
    expected: sum(rounds.map((r) => r.expected)),
    buffered: rounds.some((r) => r.buffered),
    p50Ms: median(rounds.map((r) => r.p50Ms)),
    p99Ms: median(rounds.map((r) => r.p99Ms)),
    maxMs: max(rounds.map((r) => r.maxMs)),
    fanoutP50Ms: median(rounds.map((r) => r.fanoutP50Ms)),
    cpuS: median(rounds.map((r) => r.proxy?.cpuS)),
    peakRssMb: max(rounds.map((r) => r.proxy?.peakRssMb)),
    errors: sum(rounds.map((r) => r.errors?.count ?? 0)),
  }
}

const ratio = (a, b) => (a === undefined || b === undefined || b === 0 ? undefined : a / b)

export function ratios(ours, go) {
  return {
    rps: ratio(ours.rps, go.rps),
    p50Ms: ratio(ours.p50Ms, go.p50Ms),
    p99Ms: ratio(ours.p99Ms, go.p99Ms),
    cpuS: ratio(ours.cpuS, go.cpuS),
    cpuUsPerReq: ratio(ours.cpuUsPerReq, go.cpuUsPerReq),
    peakRssMb: ratio(ours.peakRssMb, go.peakRssMb),
  }
}

// --- printing -------------------------------------------------------------------------------

const fixed = (digits) => (v) => (v === undefined ? "-" : v.toFixed(digits))
const num = (v) => (v === undefined ? "-" : Math.round(v).toLocaleString("en-US"))
const ms = (v) => (v === undefined ? "-" : v < 10 ? v.toFixed(2) : v.toFixed(1))
const times = (v) => (v === undefined ? "-" : `${v.toFixed(2)}×`)
const signedMs = (v) => (v === undefined ? "-" : `${v >= 0 ? "+" : ""}${ms(v)}`)

function render(header, rows) {
  const filled = rows.filter((r) => r !== null)
  const widths = header.map((h, i) => Math.max(h.length, ...filled.map((r) => String(r[i]).length)))
  const line = (cells) =>
    cells
      .map((c, i) => (i < 2 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i])))
      .join("  ")
      .trimEnd()
  const rule = widths.map((w) => "-".repeat(w)).join("  ")
  const body = rows.at(-1) === null ? rows.slice(0, -1) : rows
  return [line(header), rule, ...body.map((r) => (r === null ? rule : line(r)))].join("\n")
}

/**
 * One table: the load scenarios (req/s, latency, proxy CPU and RSS, ratios), then the watch
 * fan-out (p50/p99/max are the PUT-to-event delay; req/s column: events delivered).
 */
export function table(results) {
  const header = [
    "scenario",
    "target",
    "req/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "CPU s",
    "sys %",
    "CPU µs/req",
    "CPU wait s",
    "peak RSS MB",
    "etcd CPU s",
    "wrk CPU s",
  ]
  const rows = []
  for (const scenario of results.load) {
    for (const [target, s] of Object.entries(scenario.targets)) {
      rows.push([
        scenario.label,
        target,
        num(s.rps),
        ms(s.p50Ms),
        ms(s.p99Ms),
        num(s.errors),
        fixed(2)(s.cpuS),
        fixed(0)(s.sysPct),
        fixed(0)(s.cpuUsPerReq),
        fixed(2)(s.runQueueWaitS),
        fixed(1)(s.peakRssMb),
        fixed(2)(s.etcdCpuS),
        fixed(2)(s.wrkCpuS),
      ])
    }
    for (const [label, r] of [
      ["ours/go", scenario.ratio],
      ["ours/nginx", scenario.ratioNginx],
    ]) {
      if (r === undefined) continue
      rows.push([
        "",
        label,
        times(r.rps),
        times(r.p50Ms),
        times(r.p99Ms),
        "",
        times(r.cpuS),
        "",
        times(r.cpuUsPerReq),
        "",
        times(r.peakRssMb),
        "",
        "",
      ])
    }
    rows.push(null)
  }
  const watchHeader = [
    `watch fan-out, ${results.settings.watchers} watchers × ${results.settings.events} PUTs`,
    "target",
    "delivered",
    "p50 ms",
    "p99 ms",
    "max ms",
    "CPU s",
    "all-got-it p50",
    "peak RSS MB",
    "errors",
  ]
  const watchRows = []
  for (const scenario of results.watch) {
    for (const [target, s] of Object.entries(scenario.targets)) {
      watchRows.push([
        scenario.label,
        target,
        s.buffered && s.delivered === 0
          ? `0/${s.expected} (buffered)`
          : `${s.delivered}/${s.expected}`,
        ms(s.p50Ms),
        ms(s.p99Ms),
        ms(s.maxMs),
        fixed(2)(s.cpuS),
        ms(s.fanoutP50Ms),
        fixed(1)(s.peakRssMb),
        num(s.errors),
      ])
    }
    if (scenario.overDirect !== undefined) {
      watchRows.push([
        "",
        "ours−direct",
        "",
        signedMs(scenario.overDirect.p50Ms),
        signedMs(scenario.overDirect.p99Ms),
        "",
        "",
        signedMs(scenario.overDirect.fanoutP50Ms),
        "",
        "",
      ])
    }
    watchRows.push(null)
  }
  const parts = [render(header, rows)]
  if (watchRows.length > 0) parts.push(render(watchHeader, watchRows))
  return parts.join("\n\n")
}

export function memoryTable(memory) {
  const header = [
    "memory scenario",
    "target",
    "watchers",
    "RSS before MB",
    "RSS held MB",
    "peak RSS MB",
    "fds before",
    "fds held",
    "fds after",
    "event delivered",
    "event p50 ms",
    "event p99 ms",
  ]
  const rows = Object.entries(memory.targets).map(([target, m]) => [
    "long-poll watchers",
    target,
    num(m.watchers),
    fixed(1)(m.before?.rssMb),
    fixed(1)(m.held?.rssMb),
    fixed(1)(m.peakRssMb),
    num(m.before?.fds),
    num(m.held?.fds),
    num(m.after?.fds),
    `${m.delivered}/${m.watchers}`,
    ms(m.p50Ms),
    ms(m.p99Ms),
  ])
  return render(header, rows)
}

/** SPEC §12 targets, each `{ target, value, ok }` (ok undefined when not measured). */
export function targets(results) {
  const load = Object.fromEntries(results.load.map((s) => [s.id, s]))
  const watch = Object.fromEntries(results.watch.map((s) => [s.id, s]))
  const out = []
  const check = (target, value, ok) => out.push({ target, value, ok })
  const get = load.get?.ratio
  if (get !== undefined) check("GET throughput ≥ 1.5× Go proxy", times(get.rps), get.rps >= 1.5)
  const put = load.put?.ratio
  if (put !== undefined) check("PUT throughput ≥ 1.3× Go proxy", times(put.rps), put.rps >= 1.3)
  for (const s of [load.get, load.put]) {
    if (s?.ratio === undefined) continue
    const o = s.targets.ours
    const g = s.targets.go
    check(`${s.label}: p99 ≤ Go proxy's`, `${ms(o.p99Ms)} vs ${ms(g.p99Ms)} ms`, o.p99Ms <= g.p99Ms)
  }
  if (get !== undefined) {
    const o = load.get.targets.ours
    const g = load.get.targets.go
    check(
      "CPU per proxied GET ≤ 0.6× Go proxy's",
      `${times(get.cpuUsPerReq)} (${fixed(0)(o.cpuUsPerReq)} vs ${fixed(0)(g.cpuUsPerReq)} µs)`,
      get.cpuUsPerReq <= 0.6,
    )
  }
  const nginx = load.get?.ratioNginx
  if (nginx !== undefined)
    check("goal beyond: GET throughput ≥ nginx", times(nginx.rps), nginx.rps >= 1)
  const rss = max(results.load.map((s) => s.targets.ours?.peakRssMb))
  if (rss !== undefined)
    check("RSS under the 64-connection load ≤ 100 MB", `${fixed(1)(rss)} MB`, rss <= 100)
  const stream = watch.stream
  if (stream?.overDirect !== undefined) {
    const d = stream.overDirect
    check(
      "stream event delay ≤ 1 ms over direct (p50)",
      `${signedMs(d.p50Ms)} ms (p99 ${signedMs(d.p99Ms)})`,
      d.p50Ms <= 1,
    )
  }
  const mem = results.memory?.targets?.ours
  if (mem !== undefined) {
    const ok = mem.delivered === mem.watchers && mem.peakRssMb <= 250
    check(
      `${num(mem.watchers)} long-poll watchers held, RSS ≤ 250 MB`,
      `${fixed(1)(mem.peakRssMb)} MB, ${mem.delivered}/${mem.watchers} got the event`,
      ok,
    )
  }
  return out
}

export function targetLines(checks) {
  return checks
    .map(
      (c) => `${c.ok === undefined ? "  ?  " : c.ok ? "  ok " : " MISS"}  ${c.target}: ${c.value}`,
    )
    .join("\n")
}
