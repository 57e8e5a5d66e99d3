/**
 * What the request path does when a member fails in the middle of a request (SPEC §3.4, §3.12,
 * §5.5, §5.7), through the built CLI in front of a real 3-member cluster: long polls outlive
 * their member, a hung member costs a GET the answer timeout and no more, writes wait rather
 * than run twice, and a restarted member's dead keep-alive connections are no failure.
 */
import * as http from "node:http"
import { expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { EtcdCluster } from "../support/cluster.js"
import { call, form, json } from "../support/http.js"
import { startProxy } from "../support/proxy.js"

const endpoints = (proxyUrl: string) =>
  Effect.map(
    call(`${proxyUrl}/v2/config/local/proxy`),
    (answer) => (json(answer) as { endpoints: Array<string> }).endpoints,
  )

interface Raw {
  readonly status: number
  readonly body: string
  /** The body arrived whole (the connection was not cut mid-answer). */
  readonly complete: boolean
}

/** A GET with node:http and no agent: one connection, the whole answer, or how it broke. */
const rawGet = (url: string, timeoutMs: number): Promise<Raw> =>
  new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => (body += chunk))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, complete: true }))
      res.on("aborted", () => resolve({ status: res.statusCode ?? 0, body, complete: false }))
      res.on("error", () => resolve({ status: res.statusCode ?? 0, body, complete: false }))
    })
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)))
    req.on("error", reject)
  })

const memberIndex = (cluster: { members: ReadonlyArray<{ clientUrl: string }> }, url: string) =>
  cluster.members.findIndex((m) => m.clientUrl === url)

layer(EtcdCluster.layer({ size: 3 }), { timeout: 120_000, excludeTestServices: true })(
  "a member failing mid-request",
  (it) => {
    it.scoped(
      "a long poll whose member is killed before any event is sent on: the client sees one answer",
      () =>
        Effect.gen(function* () {
          const cluster = yield* EtcdCluster
          const proxy = yield* startProxy({
            args: ["--initial-cluster", cluster.initialCluster, "--proxy-failure-wait", "60000"],
          })
          const put = yield* call(`${proxy.url}/v2/keys/resend`, {
            method: "PUT",
            body: "value=before",
            headers: form({}),
          })
          const index = Number((put.headers["x-etcd-index"] as string) ?? "0")
          const [first] = yield* endpoints(proxy.url)
          const victim = memberIndex(cluster, first!)
          const survivor = cluster.members.find((_, i) => i !== victim)!.clientUrl

          const poll = rawGet(
            `${proxy.url}/v2/keys/resend?wait=true&waitIndex=${index + 1}`,
            30_000,
          )
          // The long poll is open at the victim (its head is out); then the victim dies.
          yield* Effect.sleep("1 second")
          yield* Effect.promise(() => cluster.killMember(victim))
          // Straight to a survivor, retried while the cluster elects a new leader.
          for (let attempt = 0; attempt < 40; attempt++) {
            const written = yield* call(`${survivor}/v2/keys/resend`, {
              method: "PUT",
              body: "value=after",
              headers: form({}),
            })
            if (written.status === 200 || written.status === 201) break
            yield* Effect.sleep("250 millis")
          }
          const answer = yield* Effect.promise(() => poll)
          expect(answer.complete).toBe(true)
          expect(answer.status).toBe(200)
          expect(JSON.parse(answer.body)).toMatchObject({ action: "set", node: { value: "after" } })
          expect(proxy.output()).toContain("endpoint marked failed")
          yield* Effect.promise(() => cluster.restartMember(victim))
        }),
    )

    it.scoped(
      "a hung member (SIGSTOP): a GET moves on after --proxy-answer-timeout; a write waits and runs once",
      () =>
        Effect.gen(function* () {
          const cluster = yield* EtcdCluster
          const proxy = yield* startProxy({
            args: [
              "--initial-cluster",
              cluster.initialCluster,
              "--proxy-answer-timeout",
              "1000",
              "--proxy-failure-wait",
              "60000",
            ],
          })
          const [first] = yield* endpoints(proxy.url)
          const stuck = memberIndex(cluster, first!)
          yield* Effect.acquireRelease(
            Effect.sync(() => cluster.pause(stuck)),
            () => Effect.sync(() => cluster.resume(stuck)),
          )
          // Sent to the hung member first: a write is never sent twice, so it waits for it.
          const write = Effect.runPromise(
            call(`${proxy.url}/v2/keys/hung-write`, {
              method: "POST",
              body: "value=once",
              headers: form({}),
            }),
          )
          yield* Effect.sleep("200 millis")
          const started = Date.now()
          const got = yield* Effect.promise(() => rawGet(`${proxy.url}/v2/keys/`, 20_000))
          const waited = Date.now() - started
          expect(got.status).toBe(200)
          // Bounded by the answer timeout (1 s) plus the sweep's granularity, not by the hang.
          expect(waited).toBeLessThan(5_000)
          expect(proxy.output()).toMatch(/endpoint marked failed.*AnswerTimeout/)
          const [now] = yield* endpoints(proxy.url)
          expect(now).not.toBe(first)

          // The write is still waiting for the hung member; once it wakes, it is applied once.
          yield* Effect.sleep("1500 millis")
          let settled = false
          void write.then(() => (settled = true))
          yield* Effect.sleep("100 millis")
          expect(settled).toBe(false)
          cluster.resume(stuck)
          const answer = yield* Effect.promise(() => write)
          const listing = json(
            yield* call(`${now}/v2/keys/hung-write?recursive=true&quorum=true`),
          ) as { node: { nodes?: Array<{ value: string }> } }
          const stored = (listing.node.nodes ?? []).map((n) => n.value)
          // The member answers for itself: created, or (if it had been the leader and lost its
          // place meanwhile) its own error; never applied twice, and never lost once acknowledged.
          if (answer.status === 201) expect(stored).toEqual(["once"])
          else {
            expect(answer.status).toBeGreaterThanOrEqual(500)
            expect(stored.length).toBeLessThanOrEqual(1)
          }
        }),
    )

    it.scoped(
      "a restarted member: its dead keep-alive connections are no failure, GETs keep going to it",
      () =>
        Effect.gen(function* () {
          const cluster = yield* EtcdCluster
          const proxy = yield* startProxy({
            args: ["--initial-cluster", cluster.initialCluster, "--proxy-failure-wait", "60000"],
          })
          const [first] = yield* endpoints(proxy.url)
          const restarted = memberIndex(cluster, first!)
          // Several idle keep-alive connections to the first member.
          yield* Effect.forEach(
            Array.from({ length: 20 }, (_, i) => i),
            () => call(`${proxy.url}/v2/keys/`),
            { concurrency: 10 },
          )
          yield* Effect.promise(async () => {
            await cluster.killMember(restarted)
            await cluster.restartMember(restarted)
          })
          const before = proxy.output().split("endpoint marked failed").length
          const statuses = yield* Effect.forEach(
            Array.from({ length: 40 }, (_, i) => i),
            () => Effect.map(call(`${proxy.url}/v2/keys/`), (a) => a.status),
            { concurrency: 10 },
          )
          expect(statuses.filter((s) => s !== 200)).toEqual([])
          expect(proxy.output().split("endpoint marked failed").length).toBe(before)
          expect((yield* endpoints(proxy.url))[0]).toBe(first)
        }),
    )

    it.scoped(
      "a request members refuse by dropping its new connection marks no member failed (SPEC §3.13)",
      () =>
        Effect.gen(function* () {
          const cluster = yield* EtcdCluster
          const proxy = yield* startProxy({
            args: ["--initial-cluster", cluster.initialCluster, "--proxy-failure-wait", "60000"],
          })
          const available = Effect.map(call(`${proxy.url}/v2/config/local/proxy`), (answer) =>
            (
              json(answer) as {
                members: Array<{ clientURLs: Array<{ url: string; state: string }> }>
              }
            ).members
              .flatMap((m) => m.clientURLs.filter((u) => u.state === "available"))
              .map((u) => u.url)
              .sort(),
          )
          const before = yield* available
          expect(before.length).toBeGreaterThan(0)
          // etcd closes a new connection whose request line is over 4 KiB (its protocol
          // sniffing reads no further): each such GET, one connection each, forces fresh member
          // connections that the members drop after the request went out.
          const long = `${proxy.url}/v2/keys/${"a".repeat(8_000)}`
          const outcomes = yield* Effect.forEach(
            Array.from({ length: 20 }, (_, i) => i),
            () =>
              Effect.promise(() =>
                rawGet(long, 10_000).then(
                  (answer) => answer.status,
                  () => 0,
                ),
              ),
            { concurrency: 20 },
          )
          // Every one answered: the members' refusal comes back as the proxy's 502.
          expect(outcomes.filter((status) => status === 0)).toEqual([])
          expect(outcomes.filter((status) => status === 503)).toEqual([])
          // The health probes that follow find every member well: none is marked failed.
          yield* Effect.sleep("1 second")
          expect(yield* available).toEqual(before)
          expect(proxy.output()).not.toContain("endpoint marked failed")
          expect((yield* call(`${proxy.url}/v2/keys/`)).status).toBe(200)
        }),
    )
  },
)
