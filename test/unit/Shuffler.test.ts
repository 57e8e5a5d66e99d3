/** The endpoint order reshuffle (SPEC §5.4): its own schedule, a uniform permutation, a seedable source. */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"
import type { EndpointTable } from "../../src/domain/Endpoints.js"
import type { MemberList } from "../../src/services/cluster/MemberList.js"
import { shuffled } from "../../src/services/cluster/MemberList.js"
import {
  clientUrl,
  fetchCount,
  makeFakeCluster,
  member,
  startShuffler,
} from "./support/fakeCluster.js"

const six = [1, 2, 3, 4, 5, 6].map((n) => member(n))
const config = {
  refreshInterval: Duration.hours(1),
  shuffleInterval: Duration.millis(4_000),
}

const recordChanges = (list: MemberList) => {
  const seen: Array<EndpointTable> = []
  list.onChange((table) => seen.push(table))
  return seen
}

const order = (list: MemberList) => list.table().keys.join(" ")

describe("Shuffler", () => {
  it.scoped("reshuffles on the shuffle interval, not the refresh interval", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster(six)
      const { list } = yield* startShuffler(fake, {
        config: {
          refreshInterval: Duration.millis(10_000),
          shuffleInterval: config.shuffleInterval,
        },
      })
      const seen = recordChanges(list)
      yield* TestClock.adjust(Duration.millis(3_999))
      expect(seen).toHaveLength(0)
      yield* TestClock.adjust(Duration.millis(1))
      expect(seen).toHaveLength(1)
      expect(yield* fetchCount(fake)).toBe(1)
      yield* TestClock.adjust(Duration.millis(4_000))
      expect(seen).toHaveLength(2)
      expect(yield* fetchCount(fake)).toBe(1)
    }),
  )

  it.scoped("each reshuffle is a permutation that keeps every endpoint's state", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster(six)
      const { list } = yield* startShuffler(fake, { config })
      const endpoint = list.table().get(clientUrl(3))!
      list.markFailed(endpoint, "ECONNREFUSED")
      const orders = new Set<string>()
      for (let i = 0; i < 20; i++) {
        yield* TestClock.adjust(config.shuffleInterval)
        const table = list.table()
        orders.add(table.keys.join(" "))
        expect([...table.keys].sort()).toEqual(six.map((m) => m.clientURLs[0]!).sort())
        expect(table.get(clientUrl(3))?.state).toBe("failed")
        expect(table.available).toHaveLength(5)
      }
      // 20 shuffles of 6 endpoints (720 orders) that all came out alike would not be shuffles.
      expect(orders.size).toBeGreaterThan(10)
    }),
  )

  it.scoped("the order is determined by the random source", () =>
    Effect.gen(function* () {
      const run = (seed: number) =>
        Effect.gen(function* () {
          const fake = yield* makeFakeCluster(six)
          const { list } = yield* startShuffler(fake, { config })
          const orders = [order(list)]
          for (let i = 0; i < 3; i++) {
            yield* TestClock.adjust(config.shuffleInterval)
            orders.push(order(list))
          }
          return orders
        }).pipe(Effect.withRandom(Random.make(seed)))

      const first = yield* run(7)
      expect(yield* run(7)).toEqual(first)
      expect(yield* run(8)).not.toEqual(first)

      // The same draws, made by hand: the first refresh shuffles the new set, then every tick.
      const expected = yield* Effect.gen(function* () {
        let keys: ReadonlyArray<string> = six.map((m) => m.clientURLs[0]!)
        const orders: Array<string> = []
        for (let i = 0; i < 4; i++) {
          keys = yield* shuffled(keys)
          orders.push(keys.join(" "))
        }
        return orders
      }).pipe(Effect.withRandom(Random.make(7)))
      expect(first).toEqual(expected)
    }),
  )

  it.scoped("a refresh that leaves the set alone keeps the order", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster(six)
      const { list } = yield* startShuffler(fake, {
        config: { refreshInterval: Duration.millis(10_000), shuffleInterval: Duration.zero },
      })
      const before = order(list)
      for (let i = 1; i <= 5; i++) {
        yield* TestClock.adjust(Duration.millis(10_000))
        expect(yield* fetchCount(fake)).toBe(1 + i)
        expect(order(list)).toBe(before)
      }
    }).pipe(Effect.withRandom(Random.make(3))),
  )

  it.scoped("a new endpoint is not always put last", () =>
    Effect.gen(function* () {
      const positions = new Set<number>()
      for (let seed = 0; seed < 12; seed++) {
        const position = yield* Effect.gen(function* () {
          const fake = yield* makeFakeCluster(six)
          const { list } = yield* startShuffler(fake, {
            config: { refreshInterval: Duration.millis(10_000), shuffleInterval: Duration.zero },
          })
          yield* Ref.set(fake.members, [...six, member(7)])
          yield* TestClock.adjust(Duration.millis(10_000))
          return list.table().keys.indexOf(clientUrl(7))
        }).pipe(Effect.withRandom(Random.make(seed)), Effect.scoped)
        positions.add(position)
      }
      expect(positions.size).toBeGreaterThan(2)
    }),
  )

  it.scoped("a shuffle interval of 0 never reshuffles", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster(six)
      const { list } = yield* startShuffler(fake, {
        config: { refreshInterval: Duration.hours(1), shuffleInterval: Duration.zero },
      })
      const seen = recordChanges(list)
      yield* TestClock.adjust(Duration.minutes(59))
      expect(seen).toHaveLength(0)
    }),
  )

  it.scoped("shuffleNow reorders at once", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster(six)
      const { list, shuffler } = yield* startShuffler(fake, { config })
      const seen = recordChanges(list)
      yield* shuffler.shuffleNow
      expect(seen).toHaveLength(1)
      expect([...list.table().keys].sort()).toEqual(six.map((m) => m.clientURLs[0]!).sort())
    }),
  )
})
