/** Member failures seen through the built CLI (SPEC §3.4, §3.5, §5.5). */
import { expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { EtcdCluster } from "../support/cluster.js"
import { call, form, json } from "../support/http.js"
import { startProxy } from "../support/proxy.js"

const endpointsOf = (proxyUrl: string) =>
  Effect.map(
    call(`${proxyUrl}/v2/config/local/proxy`),
    (answer) => (json(answer) as { endpoints: Array<string> }).endpoints,
  )

layer(EtcdCluster.layer({ size: 3 }), { timeout: 90_000, excludeTestServices: true })(
  "member failures",
  (it) => {
    it.scoped(
      "one member stopped: 200 GETs, 0 failures; all stopped: the exact 502, then 503",
      () =>
        Effect.gen(function* () {
          const cluster = yield* EtcdCluster
          const proxy = yield* startProxy({
            args: ["--initial-cluster", cluster.initialCluster, "--proxy-failure-wait", "60000"],
          })
          yield* call(`${proxy.url}/v2/keys/fo/k`, {
            method: "PUT",
            body: "value=v",
            headers: form({}),
          })

          // Stop the member sticky mode sends everything to, so the burst must fail over.
          const [first] = yield* endpointsOf(proxy.url)
          const victim = cluster.members.findIndex((m) => m.clientUrl === first)
          yield* Effect.promise(() => cluster.stopMember(victim))
          const statuses = yield* Effect.forEach(
            Array.from({ length: 200 }, (_, i) => i),
            () => Effect.map(call(`${proxy.url}/v2/keys/fo/k`), (a) => a.status),
            { concurrency: 16 },
          )
          expect(statuses.filter((s) => s !== 200)).toEqual([])
          expect(yield* endpointsOf(proxy.url)).not.toContain(first)

          const config = json(yield* call(`${proxy.url}/v2/config/local/proxy`)) as {
            members: Array<{ clientURLs: Array<{ url: string; state: string }> }>
          }
          const states = config.members.flatMap((m) => m.clientURLs)
          expect(states.find((u) => u.url === first)?.state).toBe("failed")

          yield* Effect.forEach(
            cluster.members.map((_, i) => i).filter((i) => i !== victim),
            (i) => Effect.promise(() => cluster.stopMember(i)),
          )
          const exhausted = yield* call(`${proxy.url}/v2/keys/fo/k`)
          expect(exhausted.status).toBe(502)
          expect(exhausted.headers["content-type"]).toBe("application/json")
          expect(exhausted.body).toBe(
            '{"message":"httpproxy: unable to get response from 2 endpoint(s)"}',
          )
          const zero = yield* call(`${proxy.url}/v2/keys/fo/k`)
          expect(zero.status).toBe(503)
          expect(zero.headers["content-type"]).toBe("application/json")
          expect(zero.body).toBe('{"message":"httpproxy: zero endpoints currently available"}')
        }),
    )
  },
)
