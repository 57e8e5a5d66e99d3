/** Forwarding loops (SPEC §5.6): a member advertising the proxy, and proxies in a ring. */
import { expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { freePort } from "../../scripts/lib/cluster.mjs"
import { acquireCluster } from "../support/cluster.js"
import { call, json } from "../support/http.js"
import { openFds } from "../support/procfs.js"
import { startProxy } from "../support/proxy.js"

interface ProxyConfigView {
  endpoints: Array<string>
  members: Array<{ name: string; clientURLs: Array<{ url: string; state: string }> }>
}

it.scopedLive(
  "a member advertising the proxy's own URL is excluded; requests keep working; fds stay bounded",
  () =>
    Effect.gen(function* () {
      const proxyPort = yield* Effect.promise(() => freePort())
      const own = `http://127.0.0.1:${proxyPort}`
      const localhostForm = `http://localhost:${proxyPort}`
      // m1 advertises its real URL and two spellings of the proxy's own listener.
      const cluster = yield* acquireCluster({
        size: 3,
        memberArgs: (i) => (i === 0 ? ["--advertise-client-urls", `${own},${localhostForm}`] : []),
      })
      const proxy = yield* startProxy({
        port: proxyPort,
        args: ["--initial-cluster", cluster.initialCluster],
      })
      const view = json(yield* call(`${proxy.url}/v2/config/local/proxy`)) as ProxyConfigView
      expect(view.endpoints).not.toContain(own)
      expect(view.endpoints).not.toContain(localhostForm)
      const m1 = view.members.find((m) => m.name === "m1")!
      expect(m1.clientURLs.map((u) => u.state)).toEqual(["excluded-loop", "excluded-loop"])
      expect(proxy.output()).toContain("points at this proxy")

      const fdsBefore = openFds(proxy.child.pid!)
      const statuses = yield* Effect.forEach(
        Array.from({ length: 300 }, (_, i) => i),
        () => Effect.map(call(`${proxy.url}/v2/keys/`), (a) => a.status),
        { concurrency: 32 },
      )
      expect(statuses.filter((s) => s !== 200)).toEqual([])
      // Bounded: the client connections plus pooled member connections, never a runaway.
      expect(openFds(proxy.child.pid!)).toBeLessThan(fdsBefore + 100)
    }),
  { timeout: 60_000 },
)

it.scopedLive(
  "two proxies advertised in a ring answer 508 instead of hanging",
  () =>
    Effect.gen(function* () {
      const portA = yield* Effect.promise(() => freePort())
      const portB = yield* Effect.promise(() => freePort())
      const urlA = `http://127.0.0.1:${portA}`
      const urlB = `http://127.0.0.1:${portB}`
      // The only member advertises the two proxies instead of itself.
      const cluster = yield* acquireCluster({
        size: 1,
        memberArgs: () => ["--advertise-client-urls", `${urlA},${urlB}`],
      })
      const a = yield* startProxy({
        port: portA,
        args: ["--initial-cluster", cluster.initialCluster],
      })
      yield* startProxy({ port: portB, args: ["--initial-cluster", cluster.initialCluster] })
      // Each proxy excludes itself and sends to the other: A -> B -> A comes back to A.
      expect(
        (json(yield* call(`${a.url}/v2/config/local/proxy`)) as ProxyConfigView).endpoints,
      ).toEqual([urlB])
      const answer = yield* call(`${a.url}/v2/keys/`)
      expect(answer.status).toBe(508)
      expect(answer.headers["content-type"]).toBe("application/json")
      expect(answer.body).toBe(
        JSON.stringify({ message: `httpproxy: forwarding loop detected via ${urlB}` }),
      )
      // A skips the endpoint the loop went through until the next refresh.
      const after = json(yield* call(`${a.url}/v2/config/local/proxy`)) as ProxyConfigView
      expect(after.endpoints).toEqual([])
      const states = after.members.flatMap((m) => m.clientURLs)
      expect(states.find((u) => u.url === urlB)?.state).toBe("excluded-loop")
      expect(a.output()).toContain("forwarding loop detected")
    }),
  { timeout: 60_000 },
)

it.scopedLive(
  "a member advertising thousands of dead client URLs costs each failed attempt little, not a scan per pooled endpoint",
  () =>
    Effect.gen(function* () {
      // 3,000 URLs on loopback addresses nothing listens on: each dial is refused at once.
      const dead = Array.from(
        { length: 3_000 },
        (_, k) => `http://127.0.0.${2 + (k % 250)}:${20_000 + k}`,
      )
      const cluster = yield* acquireCluster({
        size: 3,
        memberArgs: (i, member) =>
          i === 0 ? ["--advertise-client-urls", [member.clientUrl, ...dead].join(",")] : [],
      })
      const proxy = yield* startProxy({
        args: [
          "--initial-cluster",
          cluster.initialCluster,
          "--proxy-balance",
          "round-robin",
          "--proxy-failure-wait",
          "600000",
        ],
      })
      const available = () =>
        Effect.map(
          call(`${proxy.url}/v2/config/local/proxy`),
          (a) => (json(a) as ProxyConfigView).endpoints.length,
        )
      expect(yield* available()).toBe(3_003)
      // Round-robin starts each GET elsewhere in the list, so GETs in a row try every dead URL.
      // Each attempt used to scan the whole table once per pooled endpoint (O(n²) per failure):
      // a single GET took 47 s with 4,000 URLs, this loop 40 s. Now about 6 s.
      const started = Date.now()
      const statuses: Array<number> = []
      while ((yield* available()) > 3 && Date.now() - started < 40_000) {
        statuses.push((yield* call(`${proxy.url}/v2/keys/`)).status)
      }
      const elapsed = Date.now() - started
      expect(yield* available()).toBe(3)
      expect(statuses.filter((s) => s !== 200)).toEqual([])
      expect(elapsed).toBeLessThan(20_000)
    }),
  { timeout: 120_000 },
)
