#!/usr/bin/env node
// Summarises a V8 .cpuprofile (node --cpu-prof): the hottest functions by self time, self time by
// area (node http/net/streams, undici, Effect, prom-client, this proxy, GC, idle), and how much of
// the busy time has each area somewhere on the stack (inclusive).
//   node bench/profile-summary.mjs FILE.cpuprofile [--top 30] [--from MS] [--to MS] [--json]
//   node bench/profile-summary.mjs FILE.cpuprofile --callers writev [--depth 4]
// (--from/--to: only samples that many ms after the profile's start, e.g. the load window;
// --callers: the stacks above a function, by its self time under each)
import { readFileSync } from "node:fs"
import { pathToFileURL } from "node:url"
import { parseArgs } from "node:util"

/** The area a stack frame belongs to. */
export function areaOf({ functionName, url }) {
  if (functionName === "(garbage collector)") return "GC"
  if (functionName === "(idle)") return "idle"
  if (functionName === "(program)") return "(program): native, not attributed"
  if (functionName === "(root)") return "(root)"
  if (url === "") return "V8/C++ builtins"
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)
  if (modules !== null) {
    const pkg = modules[1]
    if (pkg === "effect" || pkg.startsWith("@effect/")) return "Effect"
    if (pkg === "prom-client" || pkg === "tdigest" || pkg === "bintrees")
      return "prom-client (metrics)"
    return pkg
  }
  if (url.includes("/dist/")) return "etcd-proxy (dist)"
  if (url.startsWith("node:")) {
    const mod = url.slice(5)
    if (/^(_http_|http$|internal\/http)/.test(mod)) return "node:http"
    if (/^(net$|internal\/stream_base_commons|internal\/net|dns|internal\/dns)/.test(mod))
      return "node:net (sockets)"
    if (/stream/.test(mod)) return "node:streams"
    if (/^(events$|internal\/event_target)/.test(mod)) return "node:events"
    if (/^(internal\/process\/task_queues|internal\/timers|timers)/.test(mod))
      return "node: timers/ticks"
    if (/^(buffer$|internal\/buffer)/.test(mod)) return "node:buffer"
    if (/^internal\/perf/.test(mod)) return "node:perf_hooks"
    return "node: other"
  }
  return "other"
}

const short = (url) =>
  url === ""
    ? ""
    : url
        .replace(/^file:\/\//, "")
        .replace(/^.*node_modules\//, "")
        .replace(/^.*\/dist\//, "dist/")

const pct = (part, whole) => (whole === 0 ? 0 : (100 * part) / whole)

/**
 * Only samples between `fromMs` and `toMs` after the profile's start count (the load window).
 * `{ wallMs, busyMs, idleMs, gcMs, top: [...], areas: [...], inclusiveAreas: [...],
 * inclusiveOurs: [...] }`; percentages are of the busy (non-idle) time.
 */
export function summarise(profile, { top = 25, fromMs = -Infinity, toMs = Infinity } = {}) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const samples = profile.samples ?? []
  const deltas = profile.timeDeltas ?? []
  const average = samples.length > 0 ? (profile.endTime - profile.startTime) / samples.length : 0

  const keyOf = (cf) => `${cf.functionName || "(anonymous)"} ${short(cf.url)}:${cf.lineNumber + 1}`
  const self = new Map()
  const selfArea = new Map()
  const inclusiveArea = new Map()
  const inclusiveFn = new Map()
  let total = 0
  let counted = 0
  let idle = 0
  let gc = 0
  let at = 0
  for (let i = 0; i < samples.length; i++) {
    // A sample stands for the time until the next one (as DevTools counts it).
    at += deltas[i] ?? 0
    if (at / 1_000 < fromMs || at / 1_000 > toMs) continue
    const us = deltas[i + 1] ?? average
    const leaf = nodes.get(samples[i])
    if (leaf === undefined) continue
    total += us
    counted += 1
    const area = areaOf(leaf.callFrame)
    if (area === "idle") {
      idle += us
      continue
    }
    if (area === "GC") gc += us
    const key = keyOf(leaf.callFrame)
    const entry = self.get(key) ?? { us: 0, area }
    entry.us += us
    self.set(key, entry)
    selfArea.set(area, (selfArea.get(area) ?? 0) + us)
    // Inclusive: count each area and each of our functions once per sample.
    const areas = new Set()
    const ours = new Set()
    for (let id = samples[i]; id !== undefined; id = parent.get(id)) {
      const cf = nodes.get(id).callFrame
      const a = areaOf(cf)
      areas.add(a)
      if (a === "etcd-proxy (dist)") ours.add(keyOf(cf))
    }
    for (const a of areas) inclusiveArea.set(a, (inclusiveArea.get(a) ?? 0) + us)
    for (const k of ours) inclusiveFn.set(k, (inclusiveFn.get(k) ?? 0) + us)
  }
  const busy = total - idle
  const sorted = (map, pick = (v) => v) =>
    [...map.entries()].sort((a, b) => pick(b[1]) - pick(a[1]))
  return {
    wallMs: total / 1_000,
    busyMs: busy / 1_000,
    idleMs: idle / 1_000,
    gcMs: gc / 1_000,
    gcPct: pct(gc, busy),
    samples: counted,
    top: sorted(self, (v) => v.us)
      .slice(0, top)
      .map(([fn, v]) => ({ fn, area: v.area, ms: v.us / 1_000, pct: pct(v.us, busy) })),
    areas: sorted(selfArea).map(([area, us]) => ({ area, ms: us / 1_000, pct: pct(us, busy) })),
    inclusiveAreas: sorted(inclusiveArea)
      .filter(([area]) => area !== "(root)")
      .map(([area, us]) => ({ area, ms: us / 1_000, pct: pct(us, busy) })),
    inclusiveOurs: sorted(inclusiveFn)
      .slice(0, 15)
      .map(([fn, us]) => ({ fn, ms: us / 1_000, pct: pct(us, busy) })),
  }
}

/**
 * Who calls `name` (by function name): the `depth` frames above it, by the self time spent in
 * `name` under them, `{ stack, ms, pct }` (% of busy), within the same window as `summarise`.
 */
export function callers(profile, name, { depth = 4, fromMs = -Infinity, toMs = Infinity } = {}) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const samples = profile.samples ?? []
  const deltas = profile.timeDeltas ?? []
  const stacks = new Map()
  let busy = 0
  let at = 0
  for (let i = 0; i < samples.length; i++) {
    at += deltas[i] ?? 0
    if (at / 1_000 < fromMs || at / 1_000 > toMs) continue
    const us = deltas[i + 1] ?? 0
    const leaf = nodes.get(samples[i])
    if (leaf === undefined || leaf.callFrame.functionName === "(idle)") continue
    busy += us
    if (leaf.callFrame.functionName !== name) continue
    const frames = []
    for (
      let id = parent.get(leaf.id);
      id !== undefined && frames.length < depth;
      id = parent.get(id)
    ) {
      const cf = nodes.get(id).callFrame
      if (cf.functionName === "(root)") break
      frames.push(`${cf.functionName || "(anonymous)"} ${short(cf.url)}:${cf.lineNumber + 1}`)
    }
    const key = frames.join(" < ")
    stacks.set(key, (stacks.get(key) ?? 0) + us)
  }
  return [...stacks.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([stack, us]) => ({ stack, ms: us / 1_000, pct: pct(us, busy) }))
}

const f1 = (v) => v.toFixed(1).padStart(5)

/** The summary as text. */
export function formatSummary(s) {
  const lines = [
    `profile: ${s.samples} samples, ${s.wallMs.toFixed(0)} ms wall, ${s.busyMs.toFixed(0)} ms busy ` +
      `(${f1(pct(s.busyMs, s.wallMs)).trim()}%), GC ${s.gcMs.toFixed(0)} ms (${s.gcPct.toFixed(1)}% of busy)` +
      (s.requests > 0
        ? `; ${s.requests} requests, ${((s.busyMs * 1_000) / s.requests).toFixed(1)} µs busy per request`
        : ""),
    "",
    "self time by area (% of busy):",
    ...s.areas.map((a) => `  ${f1(a.pct)}%  ${a.area}`),
    "",
    "area anywhere on the stack (inclusive, % of busy):",
    ...s.inclusiveAreas.map((a) => `  ${f1(a.pct)}%  ${a.area}`),
    "",
    "hottest functions by self time (% of busy):",
    ...s.top.map((t) => `  ${f1(t.pct)}%  ${t.fn}  [${t.area}]`),
    "",
    "this proxy's functions, inclusive (% of busy):",
    ...s.inclusiveOurs.map((t) => `  ${f1(t.pct)}%  ${t.fn}`),
  ]
  return lines.join("\n")
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      top: { type: "string", default: "25" },
      from: { type: "string" },
      to: { type: "string" },
      callers: { type: "string" },
      depth: { type: "string", default: "4" },
      json: { type: "boolean", default: false },
    },
  })
  if (positionals.length !== 1) {
    process.stderr.write(
      "usage: node bench/profile-summary.mjs FILE.cpuprofile [--top N] [--from MS] [--to MS] [--callers FN [--depth N]] [--json]\n",
    )
    process.exit(2)
  }
  const profile = JSON.parse(readFileSync(positionals[0], "utf8"))
  const window = {
    fromMs: values.from === undefined ? -Infinity : Number(values.from),
    toMs: values.to === undefined ? Infinity : Number(values.to),
  }
  if (values.callers !== undefined) {
    const list = callers(profile, values.callers, { depth: Number(values.depth), ...window })
    process.stdout.write(
      values.json
        ? `${JSON.stringify(list, null, 2)}\n`
        : `${list
            .slice(0, Number(values.top))
            .map((c) => `${f1(c.pct)}%  ${c.stack}`)
            .join("\n")}\n`,
    )
  } else {
    const summary = summarise(profile, { top: Number(values.top), ...window })
    process.stdout.write(
      values.json ? `${JSON.stringify(summary, null, 2)}\n` : `${formatSummary(summary)}\n`,
    )
  }
}
