/** `--discovery` against the real discovery service and real etcd members (SPEC §6.1–6.3, §6.5, §7). */
import { expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { freePort } from "../../scripts/lib/cluster.mjs"
import {
  DiscoveryServiceTag,
  memberHealthy,
  startDiscoveryMember,
} from "../support/discoveryService.js"
import { call, json } from "../support/http.js"
import { startHttpProxy } from "../support/httpProxy.js"
import { runCli, startProxy, tempDir } from "../support/proxy.js"
import { eventually, outputContains } from "../support/wait.js"

interface ProxyView {
  endpoints: Array<string>
  discovery: { state: string; registered?: number; size?: number | null }
}

const pendingBody = (registered: number, size: number) =>
  JSON.stringify({
    message: `httpproxy: discovery pending: ${registered} of ${size} members registered`,
  })

const neverCreated = (service: { url: string }) => `${service.url}/0123456789abcdef0123456789abcdef`

layer(DiscoveryServiceTag.layer, { excludeTestServices: true, timeout: "60 seconds" })(
  "discovery URL",
  (it) => {
    it.scoped(
      "a proxy started before any member answers 503 0 of 3, then 1 of 3, and forwards once three members joined; restarted, its saved data dir wins over --discovery",
      () =>
        Effect.gen(function* () {
          const service = yield* DiscoveryServiceTag
          const token = yield* service.newToken(3)
          const dataDir = yield* tempDir("etcd-proxy-disc-")
          const port = yield* Effect.promise(() => freePort())

          // The first proxy lives in its own scope, so that it can stop while the members run on.
          const firstRun = yield* Scope.make()
          yield* Effect.addFinalizer(() => Scope.close(firstRun, Exit.void))
          const proxy = yield* startProxy({
            port,
            dataDir,
            args: ["--discovery", token, "--proxy-refresh-interval", "1000"],
          }).pipe(Scope.extend(firstRun))
          const first = yield* call(`${proxy.url}/v2/keys/k`)
          expect(first.status).toBe(503)
          expect(first.body).toBe(pendingBody(0, 3))
          expect(first.headers["content-type"]).toBe("application/json")
          const view0 = json(yield* call(`${proxy.url}/v2/config/local/proxy`)) as ProxyView
          expect(view0.discovery).toEqual({ state: "pending", registered: 0, size: 3 })

          const m1 = yield* startDiscoveryMember(token, "d1")
          yield* eventually(
            "1 of 3 through the proxy",
            call(`${proxy.url}/v2/keys/k`),
            (a) => a.body === pendingBody(1, 3),
          )
          const pending = json(yield* call(`${proxy.url}/v2/config/local/proxy`)) as ProxyView
          expect(pending.discovery).toEqual({ state: "pending", registered: 1, size: 3 })
          yield* outputContains("the proxy", proxy.output, "discovery: 1 of 3 members registered")

          const m2 = yield* startDiscoveryMember(token, "d2")
          const m3 = yield* startDiscoveryMember(token, "d3")
          const members = [m1, m2, m3]
          yield* Effect.forEach(members, (m) => memberHealthy(m), { concurrency: "unbounded" })
          const put = yield* eventually(
            "a write through the proxy",
            call(`${proxy.url}/v2/keys/k`, {
              method: "PUT",
              body: "value=discovered",
              headers: { "content-type": "application/x-www-form-urlencoded" },
            }),
            (a) => a.status === 201 || a.status === 200,
          )
          expect(put.body).toContain('"value":"discovered"')
          const direct = yield* call(`${m3.clientUrl}/v2/keys/k`)
          expect(direct.body).toContain('"value":"discovered"')
          const done = json(yield* call(`${proxy.url}/v2/config/local/proxy`)) as ProxyView
          expect(done.discovery).toEqual({ state: "complete" })
          const clientUrls = members.map((m) => m.clientUrl).sort()
          expect([...done.endpoints].sort()).toEqual(clientUrls)
          expect(proxy.output()).toContain("discovery complete")
          yield* Scope.close(firstRun, Exit.void)

          // Restarted on the same data dir with a token that was never created: the saved file wins.
          const again = yield* startProxy({
            port,
            dataDir,
            args: ["--discovery", neverCreated(service)],
          })
          const view = json(yield* call(`${again.url}/v2/config/local/proxy`)) as ProxyView
          expect(view.discovery).toEqual({ state: "complete" })
          expect([...view.endpoints].sort()).toEqual(clientUrls)
          const read = yield* call(`${again.url}/v2/keys/k`)
          expect(read.status).toBe(200)
          expect(read.body).toContain('"value":"discovered"')
          expect(again.output()).toContain("using the saved cluster file")
        }),
    )

    it.scoped("a token never created stops start-up with the operator-worded error", () =>
      Effect.gen(function* () {
        const service = yield* DiscoveryServiceTag
        const dataDir = yield* tempDir("etcd-proxy-disc-")
        const port = yield* Effect.promise(() => freePort())
        const run = yield* runCli([
          "--discovery",
          neverCreated(service),
          "--listen-client-urls",
          `http://127.0.0.1:${port}`,
          "--data-dir",
          dataDir,
        ])
        expect(run.code).toBe(1)
        expect(run.output).toContain(
          `etcd-proxy: discovery token ${neverCreated(service)} does not exist`,
        )
        expect(run.output).toContain("never created")
        expect(run.output).toContain("/new?size=N")
      }),
    )

    it.scoped("a bad size and a malformed member value stop start-up, each with its reason", () =>
      Effect.gen(function* () {
        const service = yield* DiscoveryServiceTag
        const dataDir = yield* tempDir("etcd-proxy-disc-")
        const port = yield* Effect.promise(() => freePort())
        const start = (token: string) =>
          runCli([
            "--discovery",
            token,
            "--listen-client-urls",
            `http://127.0.0.1:${port}`,
            "--data-dir",
            dataDir,
          ])

        const badSize = yield* service.newToken(3)
        yield* service.putRegistryKey(badSize, "_config/size", "three")
        const sized = yield* start(badSize)
        expect(sized.code).toBe(1)
        expect(sized.output).toContain(`discovery token ${badSize} has a bad cluster size "three"`)

        const malformed = yield* service.newToken(2)
        yield* service.putRegistryKey(malformed, "9a1b2c3d4e5f6071", "m1=http://127.0.0.1:2380")
        yield* service.putRegistryKey(malformed, "1a2b3c4d5e6f7081", "no-url-here")
        const bad = yield* start(malformed)
        expect(bad.code).toBe(1)
        expect(bad.output).toContain("malformed member registration")
        expect(bad.output).toContain('"no-url-here"')
      }),
    )

    it.scoped(
      "an unreachable service: the proxy listens at once, retries with backoff, and carries on when the service appears",
      () =>
        Effect.gen(function* () {
          const service = yield* DiscoveryServiceTag
          const token = yield* service.newToken(3)
          const laterPort = yield* Effect.promise(() => freePort())
          // The same token, through a service instance that is not running yet.
          const later = `http://127.0.0.1:${laterPort}${new URL(token).pathname}`
          const proxy = yield* startProxy({ args: ["--discovery", later] })
          const waiting = yield* call(`${proxy.url}/v2/keys/k`)
          expect(waiting.status).toBe(503)
          expect(json(waiting)).toEqual({
            message: "httpproxy: discovery pending: waiting for the discovery service",
          })
          const view = json(yield* call(`${proxy.url}/v2/config/local/proxy`)) as ProxyView
          expect(view.discovery).toEqual({ state: "pending", registered: 0, size: null })
          yield* outputContains("the proxy", proxy.output, /unreachable; retrying.*backoff=1s/)
          yield* outputContains("the proxy", proxy.output, /unreachable; retrying.*backoff=2s/)
          expect(proxy.output()).toContain("reason=ECONNREFUSED")

          yield* service.startAnother(laterPort)
          yield* eventually(
            "0 of 3 once the service is up",
            call(`${proxy.url}/v2/keys/k`),
            (a) => a.body === pendingBody(0, 3),
            { timeoutMs: 15_000 },
          )
        }),
    )

    it.scoped("--discovery-proxy sends the discovery traffic through that HTTP proxy", () =>
      Effect.gen(function* () {
        const service = yield* DiscoveryServiceTag
        const token = yield* service.newToken(2)
        const httpProxy = yield* startHttpProxy
        const proxy = yield* startProxy({
          args: ["--discovery", token, "--discovery-proxy", httpProxy.url],
        })
        const answer = yield* call(`${proxy.url}/v2/keys/k`)
        expect(answer.body).toBe(pendingBody(0, 2))
        expect(httpProxy.seen()).toContain(`${token}/_config/size`)
        expect(httpProxy.seen()).toContain(token)
        expect(
          httpProxy.seen().some((t) => t.startsWith(`${token}?wait=true&recursive=true`)),
        ).toBe(true)
        expect(proxy.output()).toContain("discovery traffic goes through an HTTP proxy")
      }),
    )
  },
)
