/** `/metrics` counts what the proxy did, under etcd's names and labels (SPEC §8.2). */
import { expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { EtcdCluster } from "../support/cluster.js"
import { b64, call, form } from "../support/http.js"
import { sample } from "../support/metrics.js"
import { startProxy } from "../support/proxy.js"

layer(EtcdCluster.layer({ size: 1 }), { timeout: 60_000, excludeTestServices: true })(
  "metrics",
  (it) => {
    it.scoped("readonly refusals are counted apart from forwarded requests", () =>
      Effect.gen(function* () {
        const cluster = yield* EtcdCluster
        const proxy = yield* startProxy({
          args: ["--initial-cluster", cluster.initialCluster, "--proxy", "readonly"],
        })
        yield* call(`${proxy.url}/v2/keys/m`, { method: "PUT", body: "value=x", headers: form({}) })
        yield* call(`${proxy.url}/v2/keys/`)
        const text = (yield* call(`${proxy.url}/metrics`)).body
        expect(sample(text, "etcd_proxy_writes_refused_total", { protocol: "http" })).toBe(1)
        expect(sample(text, "etcd_proxy_requests_total", { method: "PUT" })).toBeUndefined()
        expect(sample(text, "etcd_proxy_requests_total", { method: "GET" })).toBe(1)
      }),
    )

    it.scoped("requests, handled by code, durations and drops match what was sent", () =>
      Effect.gen(function* () {
        const cluster = yield* EtcdCluster
        const proxy = yield* startProxy({
          args: ["--initial-cluster", cluster.initialCluster, "--proxy-failure-wait", "60000"],
        })
        for (let i = 0; i < 3; i++) {
          yield* call(`${proxy.url}/v2/keys/metrics/k${i}`, {
            method: "PUT",
            body: "value=v",
            headers: form({}),
          })
        }
        for (let i = 0; i < 5; i++) yield* call(`${proxy.url}/v2/keys/metrics/k0`)
        yield* call(`${proxy.url}/v2/keys/metrics/absent`)
        yield* call(`${proxy.url}/v3/kv/range`, {
          method: "POST",
          body: JSON.stringify({ key: b64("metrics/k0") }),
        })
        // The proxy's own paths are not counted.
        yield* call(`${proxy.url}/v2/config/local/proxy`)
        yield* call(`${proxy.url}/metrics`)

        let text = (yield* call(`${proxy.url}/metrics`)).body
        expect(text).toContain("# TYPE etcd_proxy_handling_duration_seconds histogram")
        expect(sample(text, "etcd_proxy_requests_total", { method: "GET" })).toBe(6)
        expect(sample(text, "etcd_proxy_requests_total", { method: "PUT" })).toBe(3)
        expect(sample(text, "etcd_proxy_requests_total", { method: "POST" })).toBe(1)
        expect(sample(text, "etcd_proxy_handled_total", { method: "GET", code: "200" })).toBe(5)
        expect(sample(text, "etcd_proxy_handled_total", { method: "GET", code: "404" })).toBe(1)
        expect(sample(text, "etcd_proxy_handled_total", { method: "PUT", code: "201" })).toBe(3)
        expect(sample(text, "etcd_proxy_handled_total", { method: "POST", code: "200" })).toBe(1)
        expect(sample(text, "etcd_proxy_handling_duration_seconds_count", { method: "GET" })).toBe(
          6,
        )
        expect(
          sample(text, "etcd_proxy_handling_duration_seconds_bucket", {
            method: "GET",
            le: "0.0005",
          }),
        ).toBeDefined()
        expect(
          sample(text, "etcd_proxy_handling_duration_seconds_bucket", {
            method: "GET",
            le: "1.024",
          }),
        ).toBeDefined()
        expect(sample(text, "etcd_proxy_endpoints", { state: "available" })).toBe(1)
        expect(sample(text, "etcd_proxy_member_list_refreshes_total", { result: "success" })).toBe(
          1,
        )
        expect(sample(text, "process_resident_memory_bytes")).toBeGreaterThan(0)

        yield* Effect.promise(() => cluster.stopMember(0))
        expect((yield* call(`${proxy.url}/v2/keys/metrics/k0`)).status).toBe(502)
        expect((yield* call(`${proxy.url}/v2/keys/metrics/k0`)).status).toBe(503)
        text = (yield* call(`${proxy.url}/metrics`)).body
        expect(sample(text, "etcd_proxy_requests_total", { method: "GET" })).toBe(8)
        expect(
          sample(text, "etcd_proxy_dropped_total", {
            method: "GET",
            proxying_error: "failed_getting_response",
          }),
        ).toBe(1)
        expect(
          sample(text, "etcd_proxy_dropped_total", {
            method: "GET",
            proxying_error: "zero_endpoints",
          }),
        ).toBe(1)
        expect(sample(text, "etcd_proxy_endpoints", { state: "failed" })).toBe(1)
        expect(sample(text, "etcd_proxy_endpoints", { state: "available" })).toBe(0)
      }),
    )
  },
)
