/** Prometheus metrics (SPEC §8.2): etcd's proxy metrics by name and label, plus our own. */
import * as Effect from "effect/Effect"
import { Gauge, Registry, collectDefaultMetrics } from "prom-client"

export type DropReason = "zero_endpoints" | "failed_sending_request" | "failed_getting_response"

type Labels = Readonly<Record<string, string>>

interface Sample {
  readonly labels: Labels
  readonly value: number
  readonly metricName?: string
}

/**
 * A counter family whose hot path is one Map lookup and an addition. prom-client's own
 * `labels(...).inc()` hashes the label object on every call; here labels are only built
 * when `/metrics` is scraped, and prom-client still writes the exposition.
 */
class CounterFamily {
  readonly type = "counter"
  readonly aggregator = "sum"
  private readonly counts = new Map<string, { labels: Labels; value: number }>()

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelsOf: (key: string) => Labels,
  ) {}

  add(key: string, by = 1): void {
    const entry = this.counts.get(key)
    if (entry !== undefined) entry.value += by
    else this.counts.set(key, { labels: this.labelsOf(key), value: by })
  }

  get() {
    const values: Array<Sample> = [...this.counts.values()].map(({ labels, value }) => ({
      labels,
      value,
    }))
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    }
  }

  reset(): void {
    this.counts.clear()
  }
}

/** A histogram family with fixed buckets, kept as plain arrays per label value. */
class HistogramFamily {
  readonly type = "histogram"
  readonly aggregator = "sum"
  private readonly series = new Map<string, { counts: Float64Array; sum: number; count: number }>()

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly label: string,
    private readonly buckets: ReadonlyArray<number>,
  ) {}

  observe(key: string, value: number): void {
    let series = this.series.get(key)
    if (series === undefined) {
      series = { counts: new Float64Array(this.buckets.length), sum: 0, count: 0 }
      this.series.set(key, series)
    }
    series.sum += value
    series.count += 1
    for (let i = 0; i < this.buckets.length; i++) {
      if (value <= this.buckets[i]!) {
        series.counts[i]! += 1
        break
      }
    }
  }

  get() {
    const values: Array<Sample> = []
    for (const [key, { counts, sum, count }] of this.series) {
      let cumulative = 0
      this.buckets.forEach((le, i) => {
        cumulative += counts[i]!
        values.push({
          metricName: `${this.name}_bucket`,
          labels: { [this.label]: key, le: String(le) },
          value: cumulative,
        })
      })
      values.push({
        metricName: `${this.name}_bucket`,
        labels: { [this.label]: key, le: "+Inf" },
        value: count,
      })
      values.push({ metricName: `${this.name}_sum`, labels: { [this.label]: key }, value: sum })
      values.push({ metricName: `${this.name}_count`, labels: { [this.label]: key }, value: count })
    }
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    }
  }

  reset(): void {
    this.series.clear()
  }
}

/** `"GET 200"` → `{ method: "GET", code: "200" }`. */
const pair =
  (first: string, second: string) =>
  (key: string): Labels => {
    const space = key.indexOf(" ")
    return { [first]: key.slice(0, space), [second]: key.slice(space + 1) }
  }
const single =
  (label: string) =>
  (key: string): Labels => ({ [label]: key })

export class Metrics extends Effect.Service<Metrics>()("etcd-proxy/Metrics", {
  sync: () => {
    const registry = new Registry()
    collectDefaultMetrics({ register: registry })

    // etcd's proxy metrics: names, help texts, labels and buckets as in etcd's httpproxy.
    const requests = new CounterFamily(
      "etcd_proxy_requests_total",
      "Counter requests incoming by method.",
      single("method"),
    )
    const handled = new CounterFamily(
      "etcd_proxy_handled_total",
      "Counter of requests fully handled (by authoratitave servers)",
      pair("method", "code"),
    )
    const dropped = new CounterFamily(
      "etcd_proxy_dropped_total",
      "Counter of requests dropped on the proxy.",
      pair("method", "proxying_error"),
    )
    const handling = new HistogramFamily(
      "etcd_proxy_handling_duration_seconds",
      "Bucketed histogram of handling time of successful events (non-watches), by method (GET/PUT etc.).",
      "method",
      Array.from({ length: 13 }, (_, n) => 0.0005 * 2 ** n),
    )

    // Ours.
    const refreshes = new CounterFamily(
      "etcd_proxy_member_list_refreshes_total",
      "Member list refreshes, by result.",
      single("result"),
    )
    const loops = new CounterFamily(
      "etcd_proxy_loops_detected_total",
      "Forwarding loops detected: a member URL pointing at the proxy (advertised) or a request coming back (via).",
      single("kind"),
    )
    const refused = new CounterFamily(
      "etcd_proxy_writes_refused_total",
      "Requests a read-only proxy refused, by protocol.",
      single("protocol"),
    )
    for (const family of [requests, handled, dropped, handling, refreshes, loops, refused]) {
      registry.registerMetric(family as never)
    }
    for (const result of ["success", "failure"]) refreshes.add(result, 0)
    for (const kind of ["advertised", "via"]) loops.add(kind, 0)
    for (const protocol of ["http", "grpc"]) refused.add(protocol, 0)

    const endpoints = new Gauge({
      name: "etcd_proxy_endpoints",
      help: "Member client URLs known to the proxy, by state.",
      labelNames: ["state"],
      registers: [registry],
    })
    let openWatches = 0
    new Gauge({
      name: "etcd_proxy_watches_open",
      help: "Watch requests and streams currently open through the proxy.",
      registers: [registry],
      collect() {
        this.set(openWatches)
      },
    })
    let memberConnections = (): { readonly busy: number; readonly idle: number } => ({
      busy: 0,
      idle: 0,
    })
    new Gauge({
      name: "etcd_proxy_member_connections",
      help: "HTTP/1.1 connections to members: carrying a request (busy) or kept for the next one (idle).",
      labelNames: ["state"],
      registers: [registry],
      collect() {
        const { busy, idle } = memberConnections()
        this.labels("busy").set(busy)
        this.labels("idle").set(idle)
      },
    })

    return {
      registry,
      /** Where the member connection counts are read at scrape time. */
      countMemberConnections: (read: typeof memberConnections): void => {
        memberConnections = read
      },
      request: (method: string): void => requests.add(method),
      handled: (method: string, code: number, seconds: number): void => {
        handled.add(`${method} ${code}`)
        handling.observe(method, seconds)
      },
      dropped: (method: string, reason: DropReason): void => dropped.add(`${method} ${reason}`),
      setEndpoints: (counts: Readonly<Record<string, number>>): void => {
        for (const [state, count] of Object.entries(counts)) endpoints.labels(state).set(count)
      },
      refresh: (result: "success" | "failure"): void => refreshes.add(result),
      loop: (kind: "advertised" | "via"): void => loops.add(kind),
      refusedWrite: (protocol: "http" | "grpc"): void => refused.add(protocol),
      watchOpened: (): void => {
        openWatches += 1
      },
      watchClosed: (): void => {
        openWatches -= 1
      },
      exposition: (): Promise<string> => registry.metrics(),
      contentType: registry.contentType,
    } as const
  },
}) {}
