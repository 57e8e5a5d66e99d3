/** SIGTERM and SIGINT with requests open: exit 0, promptly, leaving nothing behind (SPEC §8.5). */
import * as http from "node:http"
import { expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { EtcdCluster } from "../support/cluster.js"
import { childPids } from "../support/procfs.js"
import { startProxy } from "../support/proxy.js"

/** Opens a long poll and resolves once its headers arrived; `ended` resolves when the proxy closes it. */
const openWatch = (url: string) =>
  Effect.promise(
    () =>
      new Promise<{ ended: Promise<void> }>((resolve, reject) => {
        const req = http.get(url, { agent: false }, (res) => {
          const ended = new Promise<void>((done) => {
            res.on("close", done)
            res.on("error", () => done())
          })
          res.resume()
          resolve({ ended })
        })
        req.on("error", reject)
      }),
  )

layer(EtcdCluster.layer({ size: 1 }), { timeout: 60_000, excludeTestServices: true })(
  "shutdown",
  (it) => {
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      it.scoped(`${signal} during an open watch: exit 0 within a few seconds`, () =>
        Effect.gen(function* () {
          const cluster = yield* EtcdCluster
          const proxy = yield* startProxy({ args: ["--initial-cluster", cluster.initialCluster] })
          const watch = yield* openWatch(`${proxy.url}/v2/keys/shutdown?wait=true`)
          const children = childPids(proxy.child.pid!)
          const sentAt = Date.now()
          proxy.child.kill(signal)
          const code = yield* Effect.promise(() => proxy.exited)
          const tookMs = Date.now() - sentAt
          yield* Effect.promise(() => watch.ended)
          expect(code).toBe(0)
          expect(tookMs).toBeLessThan(5_000)
          expect(proxy.output()).toContain("shutting down")
          for (const pid of children) {
            expect(() => process.kill(pid, 0)).toThrow()
          }
        }),
      )
    }
  },
)
