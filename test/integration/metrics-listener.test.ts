/**
 * `--listen-metrics-urls` (SPEC §8.6) on a proxy run in-process from a `ProxyConfig`, in front of
 * a real 3-member etcd: `/livez`, `/readyz`, `/health` and `/metrics` only, nothing forwarded;
 * readiness follows the members going away and coming back; the client listener keeps
 * forwarding `/health` to a member.
 */
import { join } from "node:path"
import { expect, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { freePort } from "../../scripts/lib/cluster.mjs"
import { makeProxyConfig } from "../../src/domain/Config.js"
import { ProxyLive } from "../../src/layers/ProxyLayer.js"
import { MetricsListener } from "../../src/services/request/MetricsListener.js"
import { EtcdCluster } from "../support/cluster.js"
import { sample } from "../support/metrics.js"
import { tempDir } from "../support/proxy.js"
import { eventually } from "../support/wait.js"

interface Answer {
  readonly status: number
  readonly body: string
  readonly headers: Headers
}

const call = (url: string, init: RequestInit = {}) =>
  Effect.promise(async (): Promise<Answer> => {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) })
    return { status: response.status, body: await response.text(), headers: response.headers }
  })

const json = (answer: Answer) => JSON.parse(answer.body) as Record<string, unknown>

layer(EtcdCluster.layer({ size: 3 }), { excludeTestServices: true, timeout: "120 seconds" })(
  "metrics listener",
  (it) => {
    it.scoped("serves its four paths only, forwards nothing, and tracks readiness", () =>
      Effect.gen(function* () {
        const cluster = yield* EtcdCluster
        const port = yield* Effect.promise(() => freePort())
        const metricsPort = yield* Effect.promise(() => freePort())
        const config = makeProxyConfig(
          {
            _tag: "InitialCluster",
            members: cluster.members.map((m) => ({ name: m.name, peerUrl: new URL(m.peerUrl) })),
          },
          {
            listenUrls: [new URL(`http://127.0.0.1:${port}`)],
            metricsUrls: [new URL(`http://127.0.0.1:${metricsPort}`)],
            dataDir: join(yield* tempDir("etcd-proxy-metrics-"), "data"),
            failureWait: Duration.millis(500),
            refreshInterval: Duration.millis(1000),
          },
        )
        const context = yield* Layer.build(ProxyLive(config))
        const ops = Context.get(context, MetricsListener).addresses[0]!
        const client = `http://127.0.0.1:${port}`
        expect(ops).toBe(`http://127.0.0.1:${metricsPort}`)

        // Up: all four paths answer.
        const live = yield* call(`${ops}/livez`)
        expect([live.status, json(live)]).toEqual([200, { health: "true" }])
        for (const path of ["/readyz", "/health"]) {
          const ready = yield* call(`${ops}${path}`)
          expect([ready.status, ready.body]).toEqual([200, '{"health":"true"}'])
          expect(ready.headers.get("content-type")).toBe("application/json")
        }
        const scrape = yield* call(`${ops}/metrics`)
        expect(scrape.status).toBe(200)
        expect(sample(scrape.body, "etcd_proxy_endpoints", { state: "available" })).toBe(3)

        // Nothing else is served, and nothing reaches a member.
        const put = yield* call(`${ops}/v2/keys/metrics-listener?value=x`, { method: "PUT" })
        expect(put.status).toBe(404)
        expect(json(put)["message"]).toContain("/v2/keys/metrics-listener is not served here")
        for (const path of [
          "/v2/keys/metrics-listener",
          "/version",
          "/v2/config/local/proxy",
          "/",
        ]) {
          expect((yield* call(`${ops}${path}`)).status).toBe(404)
        }
        const post = yield* call(`${ops}/readyz`, { method: "POST" })
        expect(post.status).toBe(405)
        expect(post.headers.get("allow")).toBe("GET, HEAD")
        const direct = yield* call(`${cluster.members[0]!.clientUrl}/v2/keys/metrics-listener`)
        expect(json(direct)["errorCode"]).toBe(100)
        const afterOps = (yield* call(`${ops}/metrics`)).body
        expect(sample(afterOps, "etcd_proxy_requests_total", { method: "PUT" })).toBeUndefined()
        expect(sample(afterOps, "etcd_proxy_requests_total", { method: "GET" })).toBeUndefined()

        // The client listener forwards /health to a member, as etcd's proxy does.
        const forwarded = yield* call(`${client}/health`)
        expect(json(forwarded)["health"]).toBe("true")
        const counted = (yield* call(`${ops}/metrics`)).body
        expect(sample(counted, "etcd_proxy_requests_total", { method: "GET" })).toBe(1)

        // Every member gone: /readyz says so, without any client request finding them gone
        // (the refresh nobody answers has their health asked); /livez does not.
        yield* Effect.promise(() =>
          Promise.all(cluster.members.map((_, i) => cluster.stopMember(i))),
        )
        yield* eventually(
          "/readyz to answer 503 with no client traffic",
          call(`${ops}/readyz`),
          (answer) => answer.status === 503,
          { timeoutMs: 10_000, intervalMs: 200 },
        )
        const refused = yield* call(`${client}/v2/keys/metrics-listener`)
        expect([502, 503]).toContain(refused.status)
        for (const path of ["/readyz", "/health"]) {
          const down = yield* call(`${ops}${path}`)
          expect(down.status).toBe(503)
          expect(json(down)).toEqual({
            health: "false",
            reason: "zero endpoints currently available (3 failed, 0 excluded as forwarding loops)",
          })
        }
        expect((yield* call(`${ops}/livez`)).status).toBe(200)

        // Members back: the failure wait ends, a probe succeeds, /readyz turns 200 again.
        yield* Effect.promise(() =>
          Promise.all([cluster.restartMember(0), cluster.restartMember(1)]),
        )
        yield* eventually(
          "/readyz to answer 200 again",
          call(`${ops}/readyz`),
          (answer) => answer.status === 200,
          { timeoutMs: 30_000, intervalMs: 200 },
        )
        expect((yield* call(`${ops}/livez`)).status).toBe(200)
      }),
    )
  },
)
