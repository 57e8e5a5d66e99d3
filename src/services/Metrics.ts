/** Prometheus metrics (SPEC §8.2): etcd's proxy metrics by name and label, plus our own. */
import * as Effect from "effect/Effect"
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client"

export type DropReason = "zero_endpoints" | "failed_sending_request" | "failed_getting_response"

/** Caches one labelled child per label value: the hot path must not hash label objects per request. */
const childCache = <C>(make: (key: string) => C) => {
  const children = new Map<string, C>()
  return (key: string): C => {
    let child = children.get(key)
    if (child === undefined) {
      child = make(key)
      children.set(key, child)
    }
    return child
  }
}

export class Metrics extends Effect.Service<Metrics>()("etcd-proxy/Metrics", {
  sync: () => {
    const registry = new Registry()
    collectDefaultMetrics({ register: registry })

    const requests = new Counter({
      name: "etcd_proxy_requests_total",
      help: "Counter requests incoming by method.",
      labelNames: ["method"],
      registers: [registry],
    })
    const handled = new Counter({
      name: "etcd_proxy_handled_total",
      help: "Counter of requests fully handled (by authoratitave servers)",
      labelNames: ["method", "code"],
      registers: [registry],
    })
    const dropped = new Counter({
      name: "etcd_proxy_dropped_total",
      help: "Counter of requests dropped on the proxy.",
      labelNames: ["method", "proxying_error"],
      registers: [registry],
    })
    const handling = new Histogram({
      name: "etcd_proxy_handling_duration_seconds",
      help: "Bucketed histogram of handling time of successful events (non-watches), by method (GET/PUT etc.).",
      labelNames: ["method"],
      buckets: Array.from({ length: 13 }, (_, n) => 0.0005 * 2 ** n),
      registers: [registry],
    })
    const endpoints = new Gauge({
      name: "etcd_proxy_endpoints",
      help: "Member client URLs known to the proxy, by state.",
      labelNames: ["state"],
      registers: [registry],
    })
    const refreshes = new Counter({
      name: "etcd_proxy_member_list_refreshes_total",
      help: "Member list refreshes, by result.",
      labelNames: ["result"],
      registers: [registry],
    })
    const loops = new Counter({
      name: "etcd_proxy_loops_detected_total",
      help: "Forwarding loops detected: a member URL pointing at the proxy (advertised) or a request coming back (via).",
      labelNames: ["kind"],
      registers: [registry],
    })
    const refused = new Counter({
      name: "etcd_proxy_writes_refused_total",
      help: "Requests a read-only proxy refused, by protocol.",
      labelNames: ["protocol"],
      registers: [registry],
    })
    const watches = new Gauge({
      name: "etcd_proxy_watches_open",
      help: "Watch requests and streams currently open through the proxy.",
      registers: [registry],
    })
    for (const result of ["success", "failure"]) refreshes.labels(result).inc(0)
    for (const kind of ["advertised", "via"]) loops.labels(kind).inc(0)
    for (const protocol of ["http", "grpc"]) refused.labels(protocol).inc(0)

    const requestsBy = childCache((method) => requests.labels(method))
    const handledBy = childCache((key) => {
      const [method, code] = key.split(" ")
      return handled.labels(method!, code!)
    })
    const droppedBy = childCache((key) => {
      const [method, reason] = key.split(" ")
      return dropped.labels(method!, reason!)
    })
    const handlingBy = childCache((method) => handling.labels(method))

    return {
      registry,
      request: (method: string): void => requestsBy(method).inc(),
      handled: (method: string, code: number, seconds: number): void => {
        handledBy(`${method} ${code}`).inc()
        handlingBy(method).observe(seconds)
      },
      dropped: (method: string, reason: DropReason): void => droppedBy(`${method} ${reason}`).inc(),
      setEndpoints: (counts: Readonly<Record<string, number>>): void => {
        for (const [state, count] of Object.entries(counts)) endpoints.labels(state).set(count)
      },
      refresh: (result: "success" | "failure"): void => refreshes.labels(result).inc(),
      loop: (kind: "advertised" | "via"): void => loops.labels(kind).inc(),
      refusedWrite: (protocol: "http" | "grpc"): void => refused.labels(protocol).inc(),
      watchOpened: (): void => watches.inc(),
      watchClosed: (): void => watches.dec(),
      exposition: (): Promise<string> => registry.metrics(),
      contentType: registry.contentType,
    } as const
  },
}) {}
