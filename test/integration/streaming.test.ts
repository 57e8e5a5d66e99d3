/** Watches through the built CLI: headers at once, each event as it happens, cancellation (SPEC §3.7–3.9). */
import * as http from "node:http"
import { expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { EtcdCluster } from "../support/cluster.js"
import { b64, call, form } from "../support/http.js"
import { establishedTo } from "../support/procfs.js"
import { startProxy } from "../support/proxy.js"

/** An open streaming request: its response headers and every body chunk with its arrival time. */
interface Stream {
  readonly headers: Promise<http.IncomingMessage>
  readonly chunks: Array<{ readonly at: number; readonly text: string }>
  readonly next: (contains: string) => Promise<{ at: number; text: string }>
  readonly close: () => void
}

const openStream = (url: string, options: { method?: string; body?: string } = {}): Stream => {
  const chunks: Array<{ at: number; text: string }> = []
  const waiters: Array<{ contains: string; resolve: (c: { at: number; text: string }) => void }> =
    []
  const req = http.request(url, { method: options.method ?? "GET", agent: false })
  const headers = new Promise<http.IncomingMessage>((resolve, reject) => {
    req.once("response", (res) => {
      res.on("data", (data: Buffer) => {
        const chunk = { at: Date.now(), text: data.toString() }
        chunks.push(chunk)
        for (const waiter of [...waiters]) {
          if (chunk.text.includes(waiter.contains)) {
            waiters.splice(waiters.indexOf(waiter), 1)
            waiter.resolve(chunk)
          }
        }
      })
      res.on("error", () => undefined)
      resolve(res)
    })
    req.once("error", reject)
  })
  req.end(options.body)
  return {
    headers,
    chunks,
    next: (contains) => {
      const seen = chunks.find((c) => c.text.includes(contains))
      return seen !== undefined
        ? Promise.resolve(seen)
        : new Promise((resolve) => waiters.push({ contains, resolve }))
    },
    close: () => req.destroy(),
  }
}

const within = <A>(ms: number, what: string, promise: Promise<A>): Effect.Effect<A> =>
  Effect.promise(() =>
    Promise.race([
      promise,
      new Promise<A>((_, reject) =>
        setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms),
      ),
    ]),
  )

const scopedStream = (url: string, options?: { method?: string; body?: string }) =>
  Effect.acquireRelease(
    Effect.sync(() => openStream(url, options)),
    (stream) => Effect.sync(() => stream.close()),
  )

const put = (base: string, key: string, value: string) =>
  Effect.flatMap(Effect.sync(Date.now), (at) =>
    Effect.as(
      call(`${base}/v2/keys/${key}`, { method: "PUT", body: `value=${value}`, headers: form({}) }),
      at,
    ),
  )

layer(EtcdCluster.layer({ size: 3 }), { timeout: 60_000, excludeTestServices: true })(
  "streaming watches",
  (it) => {
    const proxyFor = (args: ReadonlyArray<string> = []) =>
      Effect.flatMap(EtcdCluster, (cluster) =>
        startProxy({ args: ["--initial-cluster", cluster.initialCluster, ...args] }),
      )

    it.scoped("a v2 ?wait=true long poll gets its headers while no event happens", () =>
      Effect.gen(function* () {
        const proxy = yield* proxyFor()
        const watch = yield* scopedStream(`${proxy.url}/v2/keys/st/wait?wait=true`)
        const res = yield* within(5_000, "response headers", watch.headers)
        expect(res.statusCode).toBe(200)
        expect(res.headers["x-etcd-index"]).toBeDefined()
        expect(watch.chunks).toEqual([])
        yield* put(proxy.url, "st/wait", "now")
        const event = yield* within(5_000, "the event", watch.next('"now"'))
        expect(event.text).toContain('"action":"set"')
      }),
    )

    it.scoped("?wait=true&stream=true delivers each event before the next write", () =>
      Effect.gen(function* () {
        const proxy = yield* proxyFor()
        const watch = yield* scopedStream(
          `${proxy.url}/v2/keys/st/s?wait=true&stream=true&recursive=true`,
        )
        yield* within(5_000, "response headers", watch.headers)
        yield* put(proxy.url, "st/s/a", "first")
        yield* Effect.sleep("300 millis")
        const secondAt = yield* put(proxy.url, "st/s/b", "second")
        const first = yield* within(5_000, "first event", watch.next('"first"'))
        const second = yield* within(5_000, "second event", watch.next('"second"'))
        const thirdAt = yield* put(proxy.url, "st/s/c", "third")
        expect(first.at).toBeLessThanOrEqual(secondAt)
        expect(first.text).not.toContain('"second"')
        expect(second.at).toBeLessThanOrEqual(thirdAt)
        expect(second.text).not.toContain('"third"')
      }),
    )

    it.scoped("a v3 gateway watch streams each event before the next write", () =>
      Effect.gen(function* () {
        const proxy = yield* proxyFor()
        const watch = yield* scopedStream(`${proxy.url}/v3/watch`, {
          method: "POST",
          body: JSON.stringify({ create_request: { key: b64("st/v3"), range_end: b64("st/v4") } }),
        })
        yield* within(5_000, "response headers", watch.headers)
        yield* within(5_000, "created", watch.next('"created":true'))
        const put3 = (key: string, value: string) =>
          Effect.flatMap(Effect.sync(Date.now), (at) =>
            Effect.as(
              call(`${proxy.url}/v3/kv/put`, {
                method: "POST",
                body: JSON.stringify({ key: b64(key), value: b64(value) }),
              }),
              at,
            ),
          )
        yield* put3("st/v3/a", "one")
        const one = yield* within(5_000, "first event", watch.next(b64("one")))
        const twoAt = yield* put3("st/v3/b", "two")
        expect(one.at).toBeLessThanOrEqual(twoAt)
        yield* within(5_000, "second event", watch.next(b64("two")))
      }),
    )

    it.scoped("a client leaving a long watch leaves no upstream connection behind", () =>
      Effect.gen(function* () {
        const cluster = yield* EtcdCluster
        const proxy = yield* proxyFor()
        const config = (yield* call(`${proxy.url}/v2/config/local/proxy`)).body
        const first = (JSON.parse(config) as { endpoints: Array<string> }).endpoints[0]!
        const memberPort = Number(new URL(first).port)
        expect(cluster.clientUrls()).toContain(first)
        const before = establishedTo(memberPort)

        const watches = Array.from({ length: 5 }, (_, i) =>
          openStream(`${proxy.url}/v2/keys/st/leave${i}?wait=true`),
        )
        yield* Effect.forEach(watches, (w) => within(5_000, "headers", w.headers))
        expect(establishedTo(memberPort)).toBeGreaterThanOrEqual(before + 5)
        for (const w of watches) w.close()

        let after = establishedTo(memberPort)
        for (let i = 0; i < 50 && after > before; i++) {
          yield* Effect.sleep("100 millis")
          after = establishedTo(memberPort)
        }
        expect(after).toBeLessThanOrEqual(before)
      }),
    )
  },
)
