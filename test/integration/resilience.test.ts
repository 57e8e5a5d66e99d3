/** Members that stop answering or die under load, seen through the built CLI (SPEC §3.4, §5, §12). */
import { expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { EtcdCluster } from "../support/cluster.js"
import { call, json } from "../support/http.js"
import { startProxy } from "../support/proxy.js"

const firstEndpoint = (proxyUrl: string) =>
  Effect.map(
    call(`${proxyUrl}/v2/config/local/proxy`),
    (answer) => (json(answer) as { endpoints: Array<string> }).endpoints[0]!,
  )

/** Runs `worker` in `concurrency` loops until `stopAt` (ms since epoch); collects the results. */
const loopUntil = <A>(
  stopAt: number,
  concurrency: number,
  worker: (i: number) => Effect.Effect<A>,
) =>
  Effect.map(
    Effect.forEach(
      Array.from({ length: concurrency }, (_, w) => w),
      (w) =>
        Effect.gen(function* () {
          const results: Array<A> = []
          for (let i = 0; Date.now() < stopAt; i++) results.push(yield* worker(w * 1_000_000 + i))
          return results
        }),
      { concurrency: "unbounded" },
    ),
    (lists) => lists.flat(),
  )

layer(EtcdCluster.layer({ size: 3 }), { timeout: 120_000, excludeTestServices: true })(
  "failing members",
  (it) => {
    it.scoped("a member that accepts and never answers (SIGSTOP) does not hang GETs", () =>
      Effect.gen(function* () {
        const cluster = yield* EtcdCluster
        const proxy = yield* startProxy({
          args: [
            "--initial-cluster",
            cluster.initialCluster,
            "--proxy-read-timeout",
            "500",
            "--proxy-failure-wait",
            "60000",
          ],
        })
        const stuck = yield* firstEndpoint(proxy.url)
        const index = cluster.members.findIndex((m) => m.clientUrl === stuck)
        yield* Effect.acquireRelease(
          Effect.sync(() => cluster.pause(index)),
          () => Effect.sync(() => cluster.resume(index)),
        )
        const first = yield* call(`${proxy.url}/v2/keys/`)
        expect(first.status).toBe(200)
        const statuses = yield* Effect.forEach(
          Array.from({ length: 50 }, (_, i) => i),
          () => Effect.map(call(`${proxy.url}/v2/keys/`), (a) => a.status),
          { concurrency: 8 },
        )
        expect(statuses.filter((s) => s !== 200)).toEqual([])
        expect(yield* firstEndpoint(proxy.url)).not.toBe(stuck)
        expect(proxy.output()).toContain("endpoint marked failed")
      }),
    )

    it.scoped(
      "killing a member under steady GETs and writes: 0 failed GETs, no write lost or applied twice",
      () =>
        Effect.gen(function* () {
          const cluster = yield* EtcdCluster
          const proxy = yield* startProxy({
            args: ["--initial-cluster", cluster.initialCluster, "--proxy-failure-wait", "60000"],
          })
          const victim = yield* firstEndpoint(proxy.url)
          const index = cluster.members.findIndex((m) => m.clientUrl === victim)
          const stopAt = Date.now() + 3_000
          const killer = Effect.promise(async () => {
            await new Promise((resolve) => setTimeout(resolve, 1_000))
            await cluster.killMember(index)
          })
          const [gets, writes] = yield* Effect.all(
            [
              loopUntil(stopAt, 8, () =>
                Effect.map(call(`${proxy.url}/v2/keys/`), (a) => a.status),
              ),
              loopUntil(stopAt, 2, (i) =>
                Effect.map(
                  call(`${proxy.url}/v2/keys/kill-queue`, {
                    method: "POST",
                    body: `value=w${i}`,
                    headers: { "content-type": "application/x-www-form-urlencoded" },
                  }),
                  (a) => ({ value: `w${i}`, status: a.status }),
                ),
              ),
              killer,
            ],
            { concurrency: "unbounded" },
          )
          expect(gets.length).toBeGreaterThan(100)
          expect(gets.filter((s) => s !== 200)).toEqual([])

          const survivor = cluster.members.find((_, i) => i !== index)!.clientUrl
          const listing = json(
            yield* call(`${survivor}/v2/keys/kill-queue?recursive=true&sorted=true&quorum=true`),
          ) as { node: { nodes?: Array<{ value: string }> } }
          const stored = (listing.node.nodes ?? []).map((n) => n.value)
          const acknowledged = writes.filter((w) => w.status === 201).map((w) => w.value)
          // Every acknowledged write is there, and no write was applied twice.
          expect(stored.filter((v) => acknowledged.includes(v)).sort()).toEqual(
            [...acknowledged].sort(),
          )
          expect(new Set(stored).size).toBe(stored.length)
          // Anything else is unacknowledged: our 502 (not retried) or the member's own 5xx
          // while a new leader is elected.
          expect(writes.filter((w) => w.status !== 201 && w.status < 500)).toEqual([])
        }),
    )
  },
)
