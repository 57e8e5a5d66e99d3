// v2 watchers written here on plain node:http: the watch fan-out (N watchers, one writer, time
// from sending the PUT to each watcher's event) and the memory scenario (thousands of long polls
// held through a proxy while its RSS and fds are sampled).
import * as http from "node:http"
import { performance } from "node:perf_hooks"
import { fdCount, memory, resetPeak } from "./proc.mjs"

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Resolves when `done()` is true (checked every 2 ms) or after `timeoutMs`; true if done. */
async function until(done, timeoutMs) {
  const deadline = performance.now() + timeoutMs
  while (!done()) {
    if (performance.now() >= deadline) return false
    await sleep(2)
  }
  return true
}

/** Sorted-array percentile (nearest rank). */
export function percentile(sorted, p) {
  if (sorted.length === 0) return undefined
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]
}

/** A plain HTTP request with a body, resolved with `{ status, headers, body }`. */
function request(url, { method = "GET", body, agent, timeoutMs = 5_000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method,
        agent,
        headers:
          body === undefined
            ? {}
            : {
                "content-type": "application/x-www-form-urlencoded",
                "content-length": Buffer.byteLength(body),
              },
        timeout: timeoutMs,
      },
      (res) => {
        let text = ""
        res.setEncoding("utf8")
        res.on("data", (chunk) => (text += chunk))
        res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: text }))
        res.on("error", reject)
      },
    )
    req.on("timeout", () => req.destroy(new Error(`timeout: ${method} ${url}`)))
    req.on("error", reject)
    req.end(body)
  })
}

/** The v2 store's current index (X-Etcd-Index), asked of a member. */
async function etcdIndex(memberUrl, key) {
  const response = await request(`${memberUrl}/v2/keys${key}`)
  const index = Number(response.headers["x-etcd-index"])
  if (!Number.isFinite(index)) throw new Error(`no X-Etcd-Index from ${memberUrl}`)
  return index
}

/**
 * A set of v2 watchers on `key` at `baseUrl`. `mode` "rearm": `?wait=true&waitIndex=N`, one event
 * per request, re-armed after each (waitIndex makes sure none is missed); "stream":
 * `?wait=true&stream=true&waitIndex=N`, one request, newline-separated events. Every event's
 * value is its sequence number; `onEvent(seq, watcher)` is called as it is parsed. `rearm: false`
 * leaves a long poll closed after its event (the memory scenario's single event).
 */
function watcherSet({ baseUrl, key, count, mode, startIndex, onEvent, batch = 200, rearm = true }) {
  // One socket per open watch; keep-alive so that re-armed long polls reuse theirs.
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: count })
  const watchers = []
  let stopping = false
  let errors = 0
  const lastErrors = []

  const noteError = (error) => {
    if (stopping) return
    errors += 1
    if (lastErrors.length < 5) lastErrors.push(String(error?.code ?? error?.message ?? error))
  }

  const open = (w) => {
    if (stopping) return
    const stream = mode === "stream" ? "&stream=true" : ""
    const req = http.get(
      `${baseUrl}/v2/keys${key}?wait=true${stream}&waitIndex=${w.nextIndex}`,
      { agent },
      (res) => {
        w.headers = true
        if (res.statusCode !== 200) {
          noteError(new Error(`HTTP ${res.statusCode}`))
          res.resume()
          res.on("end", () => setTimeout(() => open(w), 50))
          return
        }
        let text = ""
        res.setEncoding("utf8")
        res.on("data", (chunk) => {
          text += chunk
          if (mode !== "stream") return
          let nl
          while ((nl = text.indexOf("\n")) !== -1) {
            const line = text.slice(0, nl).trim()
            text = text.slice(nl + 1)
            if (line !== "") deliver(w, line)
          }
        })
        res.on("end", () => {
          if (stopping) return
          if (mode !== "stream" && text.trim() !== "") deliver(w, text)
          w.headers = false
          if (rearm) open(w)
        })
        res.on("error", noteError)
      },
    )
    req.on("error", (error) => {
      noteError(error)
      w.headers = false
      if (!stopping) setTimeout(() => open(w), 50)
    })
    w.req = req
  }

  const deliver = (w, text) => {
    const at = performance.now()
    let event
    try {
      event = JSON.parse(text)
    } catch (error) {
      noteError(error)
      return
    }
    w.nextIndex = Number(event.node?.modifiedIndex ?? w.nextIndex - 1) + 1
    onEvent(Number(event.node?.value), w, at)
  }

  return {
    async start() {
      for (let i = 0; i < count; i++) {
        const w = { id: i, nextIndex: startIndex, headers: false, req: undefined }
        watchers.push(w)
        open(w)
        if ((i + 1) % batch === 0) await sleep(20)
      }
    },
    /** Watchers whose current request has its response headers (a proxy that buffers sends none). */
    withHeaders: () => watchers.reduce((n, w) => n + (w.headers ? 1 : 0), 0),
    errors: () => ({ count: errors, examples: lastErrors }),
    stop() {
      stopping = true
      for (const w of watchers) w.req?.destroy()
      agent.destroy()
    },
  }
}

/** Latency summary of delays in ms. */
function summary(delays) {
  const sorted = [...delays].sort((a, b) => a - b)
  return {
    samples: sorted.length,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted.at(-1),
  }
}

/**
 * The watch fan-out: `watchers` watchers at `baseUrl`, one writer PUTting `events` times straight
 * to `memberUrl` (so only the watch path differs between targets). Each PUT waits until every
 * watcher has its event or `eventTimeoutMs`; two PUTs in a row that reach nobody end the run
 * (a proxy that buffers the stream). Returns delays from sending the PUT to each watcher's event.
 */
export async function watchFanout({
  baseUrl,
  memberUrl,
  key,
  watchers,
  events,
  mode,
  eventTimeoutMs = 1_000,
}) {
  const writer = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const startIndex = (await etcdIndex(memberUrl, key)) + 1
  const sentAt = new Map()
  const got = new Map()
  const delays = []
  const fanoutMs = []
  const set = watcherSet({
    baseUrl,
    key,
    count: watchers,
    mode,
    startIndex,
    onEvent: (seq, w, at) => {
      const sent = sentAt.get(seq)
      if (sent === undefined) return
      const seen = got.get(seq)
      if (seen.has(w.id)) return
      seen.add(w.id)
      delays.push(at - sent)
      if (seen.size === watchers) fanoutMs.push(at - sent)
    },
  })
  let sent = 0
  let silent = 0
  let buffered = false
  try {
    await set.start()
    // Ready when every watch has its headers (a proxy that holds them until the event never
    // gets there: then after the time bound). waitIndex catches an event that comes earlier.
    await until(() => set.withHeaders() === watchers, 1_500)
    await sleep(100)
    for (let seq = 1; seq <= events; seq++) {
      got.set(seq, new Set())
      sentAt.set(seq, performance.now())
      sent = seq
      await request(`${memberUrl}/v2/keys${key}`, {
        method: "PUT",
        body: `value=${seq}`,
        agent: writer,
      })
      await until(() => got.get(seq).size === watchers, eventTimeoutMs)
      silent = got.get(seq).size === 0 ? silent + 1 : 0
      if (silent >= 2) {
        buffered = true
        break
      }
      if (mode === "rearm") await until(() => set.withHeaders() === watchers, 200)
      await sleep(20)
    }
    // Late events (a buffering proxy) still count, as late as they come.
    await until(() => [...got.values()].every((s) => s.size === watchers), 500)
  } finally {
    set.stop()
    writer.destroy()
  }
  const expected = sent * watchers
  return {
    mode,
    watchers,
    events: sent,
    expected,
    delivered: delays.length,
    buffered,
    ...summary(delays),
    fanoutP50Ms: percentile(
      [...fanoutMs].sort((a, b) => a - b),
      50,
    ),
    errors: set.errors(),
  }
}

/**
 * The memory scenario: `count` long-poll watchers held through the proxy `pid` at `baseUrl` for
 * `holdMs`, sampling its RSS and fds; then one PUT (straight to `memberUrl`) that each must see.
 * `probe()`, if given, is awaited while they are held (the proxy's heap from its /metrics).
 */
export async function holdWatchers({ baseUrl, memberUrl, key, count, pid, holdMs = 3_000, probe }) {
  const writer = new http.Agent({ keepAlive: false })
  const startIndex = (await etcdIndex(memberUrl, key)) + 1
  const before = { ...memory(pid), fds: fdCount(pid) }
  resetPeak(pid)
  let sentAt
  const delays = []
  const seen = new Set()
  const set = watcherSet({
    baseUrl,
    key,
    count,
    mode: "rearm",
    rearm: false,
    startIndex,
    batch: 100,
    onEvent: (seq, w, at) => {
      if (seq !== 1 || seen.has(w.id)) return
      seen.add(w.id)
      delays.push(at - sentAt)
    },
  })
  let rssMax = 0
  let fdMax = 0
  const sample = () => {
    rssMax = Math.max(rssMax, memory(pid)?.rssMb ?? 0)
    fdMax = Math.max(fdMax, fdCount(pid) ?? 0)
  }
  const timer = setInterval(sample, 200)
  let openMs
  let held
  try {
    const t0 = performance.now()
    await set.start()
    // A proxy that holds a long poll's headers until the event (etcd's) never answers here: after
    // 1.5 s with none, it gets the hold time to have forwarded them all.
    const allHeaders = await until(
      () =>
        set.withHeaders() === count || (set.withHeaders() === 0 && performance.now() - t0 > 1_500),
      10_000,
    )
    openMs = allHeaders && set.withHeaders() === count ? performance.now() - t0 : undefined
    await sleep(holdMs)
    sample()
    held = { ...memory(pid), fds: fdCount(pid), withHeaders: set.withHeaders() }
    if (probe !== undefined) held.probe = await probe()
    sentAt = performance.now()
    await request(`${memberUrl}/v2/keys${key}`, { method: "PUT", body: "value=1", agent: writer })
    await until(() => seen.size === count, 5_000)
  } finally {
    clearInterval(timer)
    set.stop()
    writer.destroy()
  }
  await sleep(1_000)
  const after = { ...memory(pid), fds: fdCount(pid) }
  const peakRssMb = Math.max(rssMax, held?.hwmMb ?? 0)
  return {
    watchers: count,
    openMs,
    before,
    held,
    peakRssMb,
    peakFds: fdMax,
    after,
    delivered: seen.size,
    ...summary(delays),
    errors: set.errors(),
  }
}
