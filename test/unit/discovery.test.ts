/**
 * The discovery URL protocol as a state machine (SPEC §6.1–6.3), driven by TestClock against a
 * small fake answer source: named as such, and used only for what a real service cannot be made to
 * show on demand (an empty 200, a silent watch, minutes of unreachability, a bad size arriving).
 */
import { expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import {
  backoffDelay,
  decodeKeysAnswer,
  discoveryBackoff,
  DiscoveryUnreachable,
  parseRegistration,
  parseSize,
  registrations,
} from "../../src/domain/Discovery.js"
import type { DiscoveryShape } from "../../src/services/cluster/Discovery.js"
import { DiscoveryHttp, type DiscoveryAnswer } from "../../src/services/cluster/DiscoveryHttp.js"
import { checkToken, makeUrlDiscovery } from "../../src/services/cluster/DiscoveryUrl.js"

const tokenPath = "/0a1b2c3d4e5f60718293a4b5c6d7e8f9"
const token = `http://discovery.test${tokenPath}`

interface Node {
  key: string
  value: string
  createdIndex: number
}

/** A fake discovery service: the v2 keys answers the real one relays, scripted by the test. */
const fakeService = (options: { size?: string | undefined; status?: number } = {}) => {
  const state = {
    size: "size" in options ? options.size : "3",
    nodes: [] as Array<Node>,
    index: 10,
    /** The next N requests fail as if the service were down. */
    unreachable: 0,
    /** The next N plain requests answer this status (e.g. 503 from the service itself). */
    failWith: undefined as { status: number; body: string; times: number } | undefined,
    watches: [] as Array<Deferred.Deferred<DiscoveryAnswer>>,
    requests: [] as Array<{ at: number; url: string }>,
  }
  const answer = (status: number, body: string, index = state.index): DiscoveryAnswer => ({
    status,
    body,
    header: (name) => (name.toLowerCase() === "x-etcd-index" ? String(index) : undefined),
  })
  const get = (url: URL) =>
    Effect.gen(function* () {
      const at = yield* Clock.currentTimeMillis
      state.requests.push({ at, url: url.pathname + url.search })
      if (state.unreachable > 0) {
        state.unreachable--
        return yield* new DiscoveryUnreachable({ url: url.href, reason: "ECONNREFUSED" })
      }
      if (url.searchParams.get("wait") === "true") {
        const watch = yield* Deferred.make<DiscoveryAnswer>()
        state.watches.push(watch)
        return yield* Deferred.await(watch)
      }
      if (state.failWith !== undefined && state.failWith.times > 0) {
        state.failWith.times--
        return answer(state.failWith.status, state.failWith.body)
      }
      if (url.pathname.endsWith("/_config/size")) {
        return state.size === undefined
          ? answer(404, '{"errorCode":100,"message":"Key not found"}')
          : answer(
              200,
              JSON.stringify({
                action: "get",
                node: { key: `${tokenPath}/_config/size`, value: state.size },
              }),
            )
      }
      return answer(
        200,
        JSON.stringify({
          action: "get",
          node: {
            key: tokenPath,
            dir: true,
            nodes: [{ key: `${tokenPath}/_config`, dir: true, createdIndex: 1 }, ...state.nodes],
          },
        }),
      )
    })
  const layer = Layer.succeed(DiscoveryHttp, { get })
  const resolveWatches = (result: DiscoveryAnswer) =>
    Effect.suspend(() =>
      Effect.forEach(state.watches.splice(0), (watch) => Deferred.succeed(watch, result)),
    )
  const register = (id: string, value: string, createdIndex = ++state.index) =>
    Effect.suspend(() => {
      state.index = Math.max(state.index, createdIndex)
      const node = { key: `${tokenPath}/${id}`, value, createdIndex }
      state.nodes.push(node)
      return resolveWatches(answer(200, JSON.stringify({ action: "create", node }), createdIndex))
    })
  /** The long poll ends without an event, as the service does after its own timeout. */
  const emptyWatch = resolveWatches(answer(200, ""))
  const urls = () => state.requests.map((r) => r.url)
  return { state, layer, register, emptyWatch, urls }
}

/** Lets the forked discovery fiber run until nothing is left to do at this instant. */
const settle = Effect.repeatN(Effect.yieldNow(), 50)

const pending = (registered: number, size: number | null) => ({
  _tag: "Pending",
  registered,
  size,
})

const watchUrl = (index: number) => `${tokenPath}?wait=true&recursive=true&waitIndex=${index}`

const start = (service: ReturnType<typeof fakeService>) =>
  makeUrlDiscovery(new URL(token)).pipe(Effect.provide(service.layer))

const peersNow = (discovery: DiscoveryShape) =>
  Effect.map(Effect.timeoutOption(discovery.peerUrls, Duration.zero), Option.getOrUndefined)

it.scoped(
  "waits for size members: K of N as they register, an empty 200 means wait again, then the peers",
  () =>
    Effect.gen(function* () {
      const service = fakeService({ size: "3" })
      const discovery = yield* start(service)
      expect(discovery.status()).toEqual(pending(0, 3))
      expect(discovery.source).toBe(`--discovery ${token}`)
      // Listing at X-Etcd-Index 10: the watch starts at 11.
      expect(service.urls()).toEqual([`${tokenPath}/_config/size`, tokenPath, watchUrl(11)])

      yield* service.register("aa01", "m1=http://10.0.0.1:2380")
      yield* settle
      expect(discovery.status()).toEqual(pending(1, 3))
      expect(service.urls().slice(3)).toEqual([tokenPath, watchUrl(12)])

      yield* service.emptyWatch
      yield* settle
      expect(service.urls().slice(5)).toEqual([watchUrl(12)])
      expect(discovery.status()).toEqual(pending(1, 3))

      yield* service.register("aa02", "m2=http://10.0.0.2:2380,m2=http://10.0.0.2:7001")
      yield* settle
      expect(discovery.status()).toEqual(pending(2, 3))
      expect(yield* peersNow(discovery)).toBeUndefined()

      yield* service.register("aa03", "m3=http://10.0.0.3:2380")
      yield* settle
      expect(discovery.status()).toEqual({ _tag: "Complete" })
      expect(yield* discovery.peerUrls).toEqual([
        "http://10.0.0.1:2380",
        "http://10.0.0.2:2380",
        "http://10.0.0.2:7001",
        "http://10.0.0.3:2380",
      ])
    }),
)

it.scoped("a full token completes at once with the first size members by creation index", () =>
  Effect.gen(function* () {
    const service = fakeService({ size: "2" })
    yield* service.register("cc", "late=http://10.0.0.9:2380", 40)
    yield* service.register("bb", "second=http://10.0.0.2:2380", 30)
    yield* service.register("aa", "first=http://10.0.0.1:2380", 20)
    const discovery = yield* start(service)
    expect(discovery.status()).toEqual({ _tag: "Complete" })
    expect(yield* discovery.peerUrls).toEqual(["http://10.0.0.1:2380", "http://10.0.0.2:2380"])
    expect(service.urls()).toEqual([`${tokenPath}/_config/size`, tokenPath])
  }),
)

it.scoped(
  "an unreachable service: pending with no size; retried after 1, 2, 4 ... 256 s, then every 256 s",
  () =>
    Effect.gen(function* () {
      const service = fakeService({ size: "1" })
      service.state.unreachable = 12
      const discovery = yield* start(service)
      expect(discovery.status()).toEqual(pending(0, null))
      yield* TestClock.adjust(Duration.seconds(1_300))
      yield* settle
      const sizeRequests = service.state.requests
        .filter((r) => r.url.endsWith("/_config/size"))
        .map((r) => r.at / 1_000)
      expect(sizeRequests).toEqual([0, 1, 3, 7, 15, 31, 63, 127, 255, 511, 767, 1023, 1279])
      expect(discovery.status()).toEqual(pending(0, 1))

      // Reachable again, then gone again: the backoff starts afresh at 1 s.
      const before = service.state.requests.length
      service.state.unreachable = 1
      yield* service.emptyWatch
      yield* settle
      yield* TestClock.adjust(Duration.seconds(1))
      yield* settle
      const retried = service.state.requests.slice(before)
      expect(retried.map((r) => r.url)).toEqual([watchUrl(11), watchUrl(11)])
      expect(retried[1]!.at - retried[0]!.at).toBe(1_000)
    }),
)

it.scoped("a service error (5xx) is retried like an unreachable service", () =>
  Effect.gen(function* () {
    const service = fakeService({ size: "1" })
    service.state.failWith = { status: 500, body: "Internal Server Error", times: 1 }
    const discovery = yield* start(service)
    expect(discovery.status()).toEqual(pending(0, null))
    yield* TestClock.adjust(Duration.seconds(1))
    yield* settle
    expect(discovery.status()).toEqual(pending(0, 1))
  }),
)

it.scoped("a watch silent for 5 minutes is replaced after a fresh listing", () =>
  Effect.gen(function* () {
    const service = fakeService({ size: "2" })
    yield* start(service)
    expect(service.urls()).toHaveLength(3)
    yield* TestClock.adjust(Duration.minutes(5))
    yield* settle
    expect(service.urls().slice(3)).toEqual([tokenPath, watchUrl(11)])
  }),
)

it.scoped(
  "start-up fails with a typed error: token missing, bad size, malformed member, not a discovery service",
  () =>
    Effect.gen(function* () {
      const outcome = (service: ReturnType<typeof fakeService>) =>
        Effect.scoped(start(service)).pipe(
          Effect.flip,
          Effect.map((e) => [e._tag, e.message]),
        )

      const [missing, missingText] = yield* outcome(fakeService({ size: undefined }))
      expect(missing).toBe("DiscoveryTokenMissing")
      expect(missingText).toContain(`discovery token ${token} does not exist`)

      for (const size of ["0", "three", "-1", ""]) {
        const [tag, text] = yield* outcome(fakeService({ size }))
        expect(tag).toBe("DiscoveryBadSize")
        expect(text).toContain(`bad cluster size ${JSON.stringify(size)}`)
      }

      const malformed = fakeService({ size: "3" })
      yield* malformed.register("aa", "m1=http://10.0.0.1:2380")
      yield* malformed.register("bb", "just-a-name")
      const [bad, badText] = yield* outcome(malformed)
      expect(bad).toBe("DiscoveryBadMember")
      expect(badText).toContain(`${tokenPath}/bb = "just-a-name"`)

      const html = fakeService()
      html.state.failWith = { status: 200, body: "<html>hello</html>", times: 1 }
      const [notDiscovery, notDiscoveryText] = yield* outcome(html)
      expect(notDiscovery).toBe("DiscoveryBadAnswer")
      expect(notDiscoveryText).toContain("check the --discovery URL")
    }),
)

it.scoped(
  "a malformed member registering later is logged and retried, not fatal to a running proxy",
  () =>
    Effect.gen(function* () {
      const service = fakeService({ size: "2" })
      const discovery = yield* start(service)
      yield* service.register("bad", "no-url")
      yield* settle
      expect(discovery.status()).toEqual(pending(0, 2))
      // Someone removes the bad key; the next round (after 1 s) goes on.
      service.state.nodes = service.state.nodes.filter((n) => n.value !== "no-url")
      yield* TestClock.adjust(Duration.seconds(1))
      yield* service.register("aa", "m1=http://10.0.0.1:2380")
      yield* service.register("ab", "m2=http://10.0.0.2:2380")
      yield* settle
      yield* TestClock.adjust(Duration.seconds(1))
      yield* settle
      expect(discovery.status()).toEqual({ _tag: "Complete" })
    }),
)

it.effect("checkToken (join's check) reports size and registrations", () =>
  Effect.gen(function* () {
    const service = fakeService({ size: "3" })
    yield* service.register("aa", "m1=http://10.0.0.1:2380")
    const result = yield* checkToken(new URL(token)).pipe(Effect.provide(service.layer))
    expect(result).toEqual({ size: 3, registered: 1 })
    const missing = yield* checkToken(new URL(token)).pipe(
      Effect.provide(fakeService({ size: undefined }).layer),
      Effect.exit,
    )
    expect(Exit.isFailure(missing)).toBe(true)
  }),
)

it.effect("the backoff: 1 s doubling to 256 s, then 256 s", () =>
  Effect.gen(function* () {
    const outputs = yield* Schedule.run(
      discoveryBackoff,
      0,
      Array.from({ length: 12 }, () => 0),
    )
    expect(Chunk.toArray(outputs).map(Duration.toSeconds)).toEqual([
      1, 2, 4, 8, 16, 32, 64, 128, 256, 256, 256, 256,
    ])
    expect(Array.from({ length: 11 }, (_, i) => Duration.toSeconds(backoffDelay(i)))).toEqual([
      1, 2, 4, 8, 16, 32, 64, 128, 256, 256, 256,
    ])
  }),
)

it("member registrations: etcd's name=url,name=url and name=url,url; anything else is malformed", () => {
  expect(parseRegistration("m1=http://10.0.0.1:2380")).toEqual(
    Either.right(["http://10.0.0.1:2380"]),
  )
  expect(parseRegistration("m1=http://a:2380,m1=https://b:2381")).toEqual(
    Either.right(["http://a:2380", "https://b:2381"]),
  )
  expect(parseRegistration("m1=http://a:2380,http://b:2380")).toEqual(
    Either.right(["http://a:2380", "http://b:2380"]),
  )
  for (const bad of ["", "m1", "http://a:2380", "=http://a:2380", "m1=ftp://a", "m1=not a url"]) {
    expect(Either.isLeft(parseRegistration(bad))).toBe(true)
  }
})

it("sizes and listings", () => {
  expect(parseSize("3")).toBe(3)
  expect([parseSize("0"), parseSize("3.5"), parseSize(" 3"), parseSize(undefined)]).toEqual([
    undefined,
    undefined,
    undefined,
    undefined,
  ])
  const listing = decodeKeysAnswer(
    JSON.stringify({
      action: "get",
      node: {
        key: "/t",
        dir: true,
        nodes: [
          { key: "/t/_config", dir: true, createdIndex: 1 },
          { key: "/t/b", value: "b=http://b:1", createdIndex: 9 },
          { key: "/t/a", value: "a=http://a:1", createdIndex: 5 },
        ],
      },
    }),
  )
  expect(Either.isRight(listing)).toBe(true)
  if (Either.isRight(listing)) {
    expect(registrations(listing.right.node).map((r) => r.key)).toEqual(["/t/a", "/t/b"])
  }
  expect(Either.isLeft(decodeKeysAnswer("not json"))).toBe(true)
})
