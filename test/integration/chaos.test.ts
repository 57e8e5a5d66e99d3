/**
 * Chaos under steady mixed load through the built CLI (SPEC §5.7, §12): a member killed and
 * restarted, a member stopped for 5 s, the raft leader killed, a rolling restart. While one
 * member is healthy no GET fails; afterwards the cluster holds every acknowledged write once.
 */
import { expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { EtcdCluster } from "../support/cluster.js"
import { b64, call, form, json } from "../support/http.js"
import { attempt, loop, pause, type Outcome } from "../support/load.js"
import { startProxy } from "../support/proxy.js"

type Kind = "v2 GET" | "v2 PUT" | "v2 POST" | "v3 put"

interface Result extends Outcome {
  readonly kind: Kind
  /** The unique value a write carried. */
  readonly value: string
}

/**
 * Short enough that refreshes often land in a restarting member's log replay (57-497 ms
 * observed), where it answers `/members` with a degenerate list.
 */
const refreshMs = 200

const acknowledged = (r: Result): boolean =>
  r.kind === "v3 put" ? r.status === 200 : r.status === 201

const percentile = (values: ReadonlyArray<number>, p: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0
}

layer(EtcdCluster.layer({ size: 3 }), { timeout: 240_000, excludeTestServices: true })(
  "chaos",
  (it) => {
    it.scoped(
      "kill + restart, SIGSTOP 5 s, leader killed, rolling restart: 0 failed GETs, no write lost or applied twice",
      () =>
        Effect.gen(function* () {
          const cluster = yield* EtcdCluster
          const proxy = yield* startProxy({
            args: [
              "--initial-cluster",
              cluster.initialCluster,
              "--proxy-refresh-interval",
              String(refreshMs),
              "--proxy-failure-wait",
              "2000",
              "--proxy-answer-timeout",
              "1000",
            ],
          })
          const put = yield* call(`${proxy.url}/v2/keys/chaos/get`, {
            method: "PUT",
            body: "value=steady",
            headers: form({}),
          })
          expect(put.status).toBe(201)

          const begun = Date.now()
          const steps: Array<{ readonly at: number; readonly what: string }> = []
          const step = (what: string) =>
            Effect.sync(() => steps.push({ at: Date.now() - begun, what }))
          const stepAt = (at: number) =>
            steps.reduce((found, s) => (s.at <= at ? s.what : found), "warm-up")

          const inUse = Effect.map(call(`${proxy.url}/v2/config/local/proxy`), (answer) => {
            const first = (json(answer) as { endpoints: Array<string> }).endpoints[0]
            const index = cluster.members.findIndex((m) => m.clientUrl === first)
            return index === -1 ? 0 : index
          })
          const leader = Effect.gen(function* () {
            for (let i = 0; i < cluster.members.length; i++) {
              const self = yield* attempt(`${cluster.members[i]!.clientUrl}/v2/stats/self`, {
                timeoutMs: 2_000,
              })
              if (self.status === 200 && self.body.includes('"StateLeader"')) return i
            }
            return -1
          })

          let done = false
          const deadline = begun + 150_000
          const stop = () => done
          const load = Effect.all(
            [
              loop(8, stop, deadline, () =>
                Effect.map(attempt(`${proxy.url}/v2/keys/chaos/get`), (r) => ({
                  ...r,
                  kind: "v2 GET" as const,
                  value: "",
                })),
              ),
              loop(2, stop, deadline, (n) =>
                Effect.map(
                  attempt(`${proxy.url}/v2/keys/chaos/put/p${n}?prevExist=false`, {
                    method: "PUT",
                    body: `value=p${n}`,
                    headers: form({}),
                  }),
                  (r) => ({ ...r, kind: "v2 PUT" as const, value: `p${n}` }),
                ),
              ),
              loop(2, stop, deadline, (n) =>
                Effect.map(
                  attempt(`${proxy.url}/v2/keys/chaos/queue`, {
                    method: "POST",
                    body: `value=q${n}`,
                    headers: form({}),
                  }),
                  (r) => ({ ...r, kind: "v2 POST" as const, value: `q${n}` }),
                ),
              ),
              loop(2, stop, deadline, (n) =>
                Effect.map(
                  attempt(`${proxy.url}/v3/kv/put`, {
                    method: "POST",
                    body: JSON.stringify({ key: b64(`chaos/v3/k${n}`), value: b64(`k${n}`) }),
                    headers: { "content-type": "application/json" },
                  }),
                  (r) => ({ ...r, kind: "v3 put" as const, value: `k${n}` }),
                ),
              ),
            ],
            { concurrency: "unbounded" },
          )

          const chaos = Effect.gen(function* () {
            yield* pause(2_000)

            const killed = yield* inUse
            yield* step(`SIGKILL ${cluster.members[killed]!.name} (in use)`)
            yield* Effect.promise(() => cluster.killMember(killed))
            yield* pause(2_000)
            yield* step(`restart ${cluster.members[killed]!.name}`)
            yield* Effect.promise(() => cluster.restartMember(killed))
            yield* pause(3_000)

            const stopped = yield* inUse
            yield* step(`SIGSTOP ${cluster.members[stopped]!.name} (in use) for 5 s`)
            cluster.pause(stopped)
            yield* pause(5_000).pipe(Effect.ensuring(Effect.sync(() => cluster.resume(stopped))))
            yield* step(`SIGCONT ${cluster.members[stopped]!.name}`)
            yield* pause(3_000)

            const leading = yield* leader
            expect(leading).not.toBe(-1)
            yield* step(`SIGKILL ${cluster.members[leading]!.name} (raft leader)`)
            yield* Effect.promise(() => cluster.killMember(leading))
            yield* pause(2_000)
            yield* step(`restart ${cluster.members[leading]!.name}`)
            yield* Effect.promise(() => cluster.restartMember(leading))
            yield* pause(3_000)

            for (let i = 0; i < cluster.members.length; i++) {
              yield* step(`rolling restart: ${cluster.members[i]!.name}`)
              yield* Effect.promise(() => cluster.stopMember(i))
              yield* Effect.promise(() => cluster.restartMember(i))
              yield* pause(1_000)
            }
            yield* step("settle")
            yield* pause(2_000)
          }).pipe(
            Effect.ensuring(
              Effect.sync(() => {
                done = true
              }),
            ),
          )

          const [lists] = yield* Effect.all([load, chaos], { concurrency: "unbounded" })
          const results: Array<Result> = lists.flat()
          const of = (kind: Kind) => results.filter((r) => r.kind === kind)

          // The cluster afterwards, read from one member with quorum.
          const member = cluster.members[0]!.clientUrl
          const v2Nodes = (dir: string) =>
            Effect.map(
              call(`${member}/v2/keys/chaos/${dir}?recursive=true&sorted=true&quorum=true`),
              (a) =>
                a.status === 404
                  ? []
                  : ((json(a) as { node: { nodes?: Array<Record<string, unknown>> } }).node.nodes ??
                    []),
            )
          const putNodes = yield* v2Nodes("put")
          const queueNodes = yield* v2Nodes("queue")
          const v3Range = json(
            yield* call(`${member}/v3/kv/range`, {
              method: "POST",
              body: JSON.stringify({ key: b64("chaos/v3/"), range_end: b64("chaos/v30") }),
            }),
          ) as { kvs?: Array<{ key: string; value: string; version: string }> }
          const unb64 = (text: string) => Buffer.from(text, "base64").toString()

          // What each write kind stored: value -> times applied.
          const applied: Record<Exclude<Kind, "v2 GET">, Map<string, number>> = {
            // A v2 PUT replaces the node, so the store cannot show a second apply; the PUTs
            // carry prevExist=false instead, and a second apply would answer 412 (below).
            "v2 PUT": new Map(putNodes.map((n) => [String(n["value"]), 1])),
            "v2 POST": new Map(),
            "v3 put": new Map(
              (v3Range.kvs ?? []).map((kv) => [unb64(kv.value), Number(kv.version)]),
            ),
          }
          for (const n of queueNodes) {
            const value = String(n["value"])
            applied["v2 POST"].set(value, (applied["v2 POST"].get(value) ?? 0) + 1)
          }

          const gets = of("v2 GET")
          const failedGets = gets.filter((r) => r.status !== 200)
          const lines = [
            `chaos under mixed load through the built CLI (refresh ${refreshMs} ms, failure wait 2000 ms, answer timeout 1000 ms), ${((Date.now() - begun) / 1000).toFixed(1)} s:`,
            `  steps: ${steps.map((s) => `${s.at} ms ${s.what}`).join("; ")}`,
            `  requests ${results.length}; v2 GET ${gets.length}, failed ${failedGets.length}, latency p50 ${percentile(
              gets.map((r) => r.ms),
              50,
            )} ms, p99 ${percentile(
              gets.map((r) => r.ms),
              99,
            )} ms, max ${Math.max(...gets.map((r) => r.ms))} ms`,
          ]
          const lost: Array<Result> = []
          const doubled: Array<string> = []
          for (const kind of ["v2 PUT", "v2 POST", "v3 put"] as const) {
            const writes = of(kind)
            const acked = writes.filter(acknowledged)
            const missing = acked.filter((w) => !applied[kind].has(w.value))
            const twice = [
              ...[...applied[kind]].filter(([, times]) => times > 1).map(([v]) => v),
              ...writes.filter((w) => w.status === 412).map((w) => w.value),
            ]
            lost.push(...missing)
            doubled.push(...twice.map((v) => `${kind} ${v}`))
            const refused = writes.filter((w) => !acknowledged(w))
            const byStatus = new Map<number, number>()
            const example = new Map<number, Result>()
            for (const w of refused) {
              byStatus.set(w.status, (byStatus.get(w.status) ?? 0) + 1)
              if (!example.has(w.status)) example.set(w.status, w)
            }
            lines.push(
              `  ${kind}: ${writes.length} sent, ${acked.length} acknowledged, ${missing.length} lost, ${twice.length} applied twice; not acknowledged ${refused.length} (${[...byStatus].map(([s, n]) => `${s}: ${n}`).join(", ") || "none"})`,
            )
            for (const [status, w] of example) {
              lines.push(
                `    e.g. ${status} at ${w.at} ms (${stepAt(w.at)}): ${w.body.trim().slice(0, 140)}`,
              )
            }
          }
          for (const r of failedGets.slice(0, 10)) {
            lines.push(
              `  failed GET at ${r.at} ms (${stepAt(r.at)}), ${r.ms} ms: ${r.status} ${r.body.slice(0, 160)}`,
            )
          }
          console.log(lines.join("\n"))

          expect(gets.length).toBeGreaterThan(1_000)
          expect(of("v2 POST").filter(acknowledged).length).toBeGreaterThan(50)
          const summary = lines.join("\n")
          expect(failedGets.length, summary).toBe(0)
          expect(lost.slice(0, 20).map((w) => `${w.kind} ${w.value} at ${w.at} ms`)).toEqual([])
          expect(doubled.slice(0, 20)).toEqual([])
        }),
    )
  },
)
