/** The member list (SPEC §5) against a scripted cluster, every timer driven by TestClock. */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"
import type { EndpointTable } from "../../src/domain/Endpoints.js"
import type { MemberList } from "../../src/services/cluster/MemberList.js"
import {
  captureLogs,
  clientUrl,
  fetchCount,
  makeFakeCluster,
  member,
  peerUrl,
  startMemberList,
  type FakeCluster,
  type LogLine,
} from "./support/fakeCluster.js"
import type { Member } from "../../src/domain/Member.js"

const refreshInterval = Duration.millis(10_000)
const failureWait = Duration.millis(3_000)
const config = { refreshInterval, failureWait }

const states = (list: MemberList): Record<string, string> =>
  Object.fromEntries(list.table().all.map((e) => [e.url, e.state]))

const sortedKeys = (table: EndpointTable) => [...table.keys].sort()

const endpoint = (list: MemberList, n: number) => {
  const found = list.table().get(clientUrl(n))
  if (found === undefined) throw new Error(`no endpoint ${clientUrl(n)}`)
  return found
}

describe("MemberList refresh", () => {
  it.scoped("the first refresh happens while the service is built", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([member(1), member(2)])
      const list = yield* startMemberList(fake, { config })
      expect(yield* fetchCount(fake)).toBe(1)
      expect(sortedKeys(list.table())).toEqual([clientUrl(1), clientUrl(2)])
      expect(list.table().available).toHaveLength(2)
    }),
  )

  it.scoped("the next refresh fires at exactly the refresh interval, and again after it", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([member(1)])
      yield* startMemberList(fake, { config })
      yield* TestClock.adjust(Duration.millis(9_999))
      expect(yield* fetchCount(fake)).toBe(1)
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* fetchCount(fake)).toBe(2)
      yield* TestClock.adjust(Duration.millis(9_999))
      expect(yield* fetchCount(fake)).toBe(2)
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* fetchCount(fake)).toBe(3)
      yield* TestClock.adjust(Duration.millis(50_000))
      expect(yield* fetchCount(fake)).toBe(8)
    }),
  )

  it.scoped("asks the peers in sorted order until one answers", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([member(1), member(2), member(3)])
      yield* Ref.set(fake.down, new Set([peerUrl(1)]))
      yield* startMemberList(fake, { config, peers: [peerUrl(3), peerUrl(1), peerUrl(2)] })
      expect(yield* Ref.get(fake.fetched)).toEqual([peerUrl(1), peerUrl(2)])
    }),
  )

  it.scoped("the peer URLs learned replace the configured ones for the next refresh", () =>
    Effect.gen(function* () {
      // Configured with member 1 only; the cluster also has member 4, and 1 then goes away.
      const fake = yield* makeFakeCluster([member(1), member(4)])
      const list = yield* startMemberList(fake, { config, peers: [peerUrl(1)] })
      expect(yield* list.peerUrls).toEqual([peerUrl(1), peerUrl(4)])
      yield* Ref.set(fake.down, new Set([peerUrl(1)]))
      yield* Ref.set(fake.fetched, [])
      yield* TestClock.adjust(refreshInterval)
      expect(yield* Ref.get(fake.fetched)).toEqual([peerUrl(1), peerUrl(4)])
      expect(sortedKeys(list.table())).toEqual([clientUrl(1), clientUrl(4)])
    }),
  )

  it.scoped("a failed refresh keeps the last good list", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([member(1), member(2)])
      const list = yield* startMemberList(fake, { config })
      const before = list.table()
      // Peer ports unreachable; the client ports still answer their health.
      yield* Ref.set(fake.healthy, new Set([clientUrl(1), clientUrl(2)]))
      yield* Ref.set(fake.down, "all")
      yield* TestClock.adjust(refreshInterval)
      expect(yield* fetchCount(fake)).toBe(3)
      expect(list.table()).toBe(before)
      expect(list.table().available).toHaveLength(2)
      expect(yield* list.refresh).toBe("failed")
      expect(list.table()).toBe(before)
      // The list still follows the cluster once a peer answers again.
      yield* Ref.set(fake.down, new Set<string>())
      yield* Ref.set(fake.members, [member(2)])
      yield* TestClock.adjust(refreshInterval)
      expect(sortedKeys(list.table())).toEqual([clientUrl(2)])
    }),
  )

  it.scoped(
    "a refresh no peer answers marks failed the endpoints whose health does not answer",
    () =>
      Effect.gen(function* () {
        // Members gone while no client sends anything: readiness must not go on counting them.
        const fake = yield* makeFakeCluster([member(1), member(2)])
        const list = yield* startMemberList(fake, { config })
        yield* Ref.set(fake.down, "all")
        yield* Ref.set(fake.healthy, new Set([clientUrl(2)]))
        yield* TestClock.adjust(refreshInterval)
        expect([...(yield* Ref.get(fake.probed))].sort()).toEqual([clientUrl(1), clientUrl(2)])
        expect(states(list)).toEqual({ [clientUrl(1)]: "failed", [clientUrl(2)]: "available" })
        // A refused answer means members are up: nothing is probed for it.
        yield* Ref.set(fake.probed, [])
        yield* Ref.set(fake.down, new Set<string>())
        yield* answers(fake, peerUrl(1), [])
        yield* answers(fake, peerUrl(2), [])
        expect(yield* list.refresh).toBe("refused")
        yield* TestClock.adjust(Duration.millis(1))
        expect(yield* Ref.get(fake.probed)).toEqual([])
      }),
  )

  it.scoped("with no available endpoint the refresh retries every second", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([member(1)])
      yield* Ref.set(fake.down, "all")
      const list = yield* startMemberList(fake, { config })
      expect(list.table().all).toHaveLength(0)
      expect(yield* fetchCount(fake)).toBe(1)
      yield* TestClock.adjust(Duration.millis(999))
      expect(yield* fetchCount(fake)).toBe(1)
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* fetchCount(fake)).toBe(2)
      yield* TestClock.adjust(Duration.seconds(1))
      expect(yield* fetchCount(fake)).toBe(3)
      // Once there is an endpoint, back to the refresh interval.
      yield* Ref.set(fake.down, new Set<string>())
      yield* TestClock.adjust(Duration.seconds(1))
      expect(yield* fetchCount(fake)).toBe(4)
      expect(list.table().available).toHaveLength(1)
      yield* TestClock.adjust(Duration.millis(9_999))
      expect(yield* fetchCount(fake)).toBe(4)
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* fetchCount(fake)).toBe(5)
    }),
  )

  it.scoped(
    "a cluster that answers with no usable endpoint is asked every second, not continuously",
    () =>
      Effect.gen(function* () {
        // The only member advertises this proxy's own listener (SPEC §5.6).
        const fake = yield* makeFakeCluster([member(1, { clientURLs: ["http://localhost:2379"] })])
        const list = yield* startMemberList(fake, { config })
        expect(states(list)).toEqual({ "http://localhost:2379": "excluded-loop" })
        yield* TestClock.adjust(Duration.millis(999))
        expect(yield* fetchCount(fake)).toBe(1)
        yield* TestClock.adjust(Duration.millis(1))
        expect(yield* fetchCount(fake)).toBe(2)
        yield* TestClock.adjust(Duration.seconds(3))
        expect(yield* fetchCount(fake)).toBe(5)
      }),
  )

  it.scoped("a new member appears and a removed one disappears within one refresh", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([member(1), member(2)])
      const list = yield* startMemberList(fake, { config })
      yield* Ref.set(fake.members, [member(2), member(3)])
      yield* TestClock.adjust(Duration.millis(9_999))
      expect(sortedKeys(list.table())).toEqual([clientUrl(1), clientUrl(2)])
      yield* TestClock.adjust(Duration.millis(1))
      expect(sortedKeys(list.table())).toEqual([clientUrl(2), clientUrl(3)])
      expect(list.table().members.map((m) => m.name)).toEqual(["m2", "m3"])
    }),
  )

  it.scoped("learners and members without client URLs give no endpoint", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([
        member(1),
        member(4, { clientURLs: [] }),
        member(5, { isLearner: true }),
      ])
      const list = yield* startMemberList(fake, { config })
      expect(sortedKeys(list.table())).toEqual([clientUrl(1)])
      expect(yield* list.peerUrls).toEqual([peerUrl(1), peerUrl(4), peerUrl(5)])
    }),
  )

  it.scoped("failure marks survive a refresh for endpoints that stay", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([member(1), member(2)])
      const list = yield* startMemberList(fake, { config })
      list.markFailed(endpoint(list, 1), "ECONNREFUSED")
      expect(states(list)[clientUrl(1)]).toBe("failed")
      yield* Ref.set(fake.members, [member(1), member(2), member(3)])
      // The refresh lands before the failure wait ends; the probe has nothing to revive.
      yield* TestClock.adjust(Duration.millis(2_000))
      yield* list.refresh
      expect(states(list)).toEqual({
        [clientUrl(1)]: "failed",
        [clientUrl(2)]: "available",
        [clientUrl(3)]: "available",
      })
    }),
  )

  it.scoped("a failed endpoint returns only after its failure wait and a successful probe", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([member(1), member(2)])
      const list = yield* startMemberList(fake, {
        config: { ...config, refreshInterval: Duration.hours(1) },
      })
      list.markFailed(endpoint(list, 1), "ECONNREFUSED")
      expect(list.table().available.map((e) => e.url)).toEqual([clientUrl(2)])

      // Not probed before the wait ends, even though the member would answer by now.
      yield* Ref.set(fake.healthy, new Set([clientUrl(1)]))
      yield* TestClock.adjust(Duration.millis(2_999))
      expect(yield* Ref.get(fake.probed)).toEqual([])
      expect(states(list)[clientUrl(1)]).toBe("failed")

      // The wait ends but the probe fails: still failed.
      yield* Ref.set(fake.healthy, new Set<string>())
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* Ref.get(fake.probed)).toEqual([clientUrl(1)])
      expect(states(list)[clientUrl(1)]).toBe("failed")

      // The next wait ends and the probe answers: available again.
      yield* Ref.set(fake.healthy, new Set([clientUrl(1)]))
      yield* TestClock.adjust(Duration.millis(2_999))
      expect(states(list)[clientUrl(1)]).toBe("failed")
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* Ref.get(fake.probed)).toEqual([clientUrl(1), clientUrl(1)])
      expect(states(list)[clientUrl(1)]).toBe("available")
      expect(yield* fetchCount(fake)).toBe(1)

      // Nothing probes it any more.
      yield* TestClock.adjust(Duration.millis(30_000))
      expect(yield* Ref.get(fake.probed)).toHaveLength(2)
    }),
  )

  it.scoped("a suspect endpoint is marked failed only when its health does not answer", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([member(1), member(2)])
      const list = yield* startMemberList(fake, {
        config: { ...config, refreshInterval: Duration.hours(1) },
      })
      // The member answers its health: the dropped connection was about the request.
      yield* Ref.set(fake.healthy, new Set([clientUrl(1)]))
      list.suspect(endpoint(list, 1), "ECONNRESET")
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* Ref.get(fake.probed)).toEqual([clientUrl(1)])
      expect(states(list)[clientUrl(1)]).toBe("available")

      // It does not: failed, with the failure wait and probes of a plain failure.
      yield* Ref.set(fake.healthy, new Set<string>())
      list.suspect(endpoint(list, 1), "ECONNRESET")
      list.suspect(endpoint(list, 1), "ECONNRESET")
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* Ref.get(fake.probed)).toEqual([clientUrl(1), clientUrl(1)])
      expect(states(list)[clientUrl(1)]).toBe("failed")
      yield* Ref.set(fake.healthy, new Set([clientUrl(1)]))
      yield* TestClock.adjust(Duration.millis(3_000))
      expect(states(list)[clientUrl(1)]).toBe("available")
    }),
  )

  it.scoped("marking an endpoint failed twice starts one failure wait", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([member(1), member(2)])
      const list = yield* startMemberList(fake, {
        config: { ...config, refreshInterval: Duration.hours(1) },
      })
      list.markFailed(endpoint(list, 1), "ECONNREFUSED")
      list.markFailed(endpoint(list, 1), "ECONNREFUSED")
      yield* TestClock.adjust(failureWait)
      expect(yield* Ref.get(fake.probed)).toEqual([clientUrl(1)])
    }),
  )

  it.scoped("--proxy-failure-wait 0 probes a dead member again at most every 100 ms", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([member(1), member(2)])
      const list = yield* startMemberList(fake, {
        config: { ...config, failureWait: Duration.zero, refreshInterval: Duration.hours(1) },
      })
      yield* Ref.set(fake.healthy, new Set([clientUrl(2)]))
      list.markFailed(endpoint(list, 1), "ECONNREFUSED")
      // The first probe comes at once; before, every failed probe was followed by another at
      // once, a busy loop that took a CPU core (1.2 s of CPU in 3 s idle with a member down).
      yield* TestClock.adjust(Duration.millis(1_000))
      const probes = (yield* Ref.get(fake.probed)).length
      expect(probes).toBeGreaterThanOrEqual(10)
      expect(probes).toBeLessThanOrEqual(11)
      expect(states(list)[clientUrl(1)]).toBe("failed")
    }),
  )

  it.scoped("failing the last available endpoint wakes the refresh at once", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([member(1)])
      const list = yield* startMemberList(fake, { config })
      list.markFailed(endpoint(list, 1), "ECONNREFUSED")
      yield* TestClock.adjust(Duration.zero)
      expect(yield* fetchCount(fake)).toBe(2)
      // The refresh keeps the mark; with nothing available it goes on every second.
      expect(states(list)[clientUrl(1)]).toBe("failed")
      yield* TestClock.adjust(Duration.millis(999))
      expect(yield* fetchCount(fake)).toBe(2)
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* fetchCount(fake)).toBe(3)
    }),
  )

  it.scoped("failing one of several endpoints does not wake the refresh", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([member(1), member(2)])
      const list = yield* startMemberList(fake, { config })
      list.markFailed(endpoint(list, 1), "ECONNREFUSED")
      yield* TestClock.adjust(Duration.zero)
      expect(yield* fetchCount(fake)).toBe(1)
    }),
  )

  it.scoped("a loop exclusion lasts until the next refresh", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([member(1), member(2)])
      const list = yield* startMemberList(fake, { config })
      list.excludeLoop(endpoint(list, 1), "1.1 etcd-proxy-0123456789ab (http://10.0.0.1:2379)")
      expect(states(list)[clientUrl(1)]).toBe("excluded-loop")
      expect(list.table().available.map((e) => e.url)).toEqual([clientUrl(2)])
      // The failure wait does not bring it back, nor does a probe.
      yield* Ref.set(fake.healthy, new Set([clientUrl(1)]))
      yield* TestClock.adjust(Duration.millis(9_999))
      expect(states(list)[clientUrl(1)]).toBe("excluded-loop")
      expect(yield* Ref.get(fake.probed)).toEqual([])
      yield* TestClock.adjust(Duration.millis(1))
      expect(states(list)[clientUrl(1)]).toBe("available")
    }),
  )

  it.scoped("a member client URL that points at our listener is excluded, also by host name", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([
        member(1),
        member(2, { clientURLs: ["http://127.0.0.1:2379"] }),
        member(3, { clientURLs: ["http://thishost:2379"] }),
        member(4, { clientURLs: ["http://otherhost:2379"] }),
      ])
      yield* Ref.set(
        fake.hosts,
        new Map([
          ["thishost", ["127.0.0.1"]],
          ["otherhost", ["10.0.0.4"]],
        ]),
      )
      const list = yield* startMemberList(fake, { config })
      expect(states(list)).toEqual({
        [clientUrl(1)]: "available",
        "http://127.0.0.1:2379": "excluded-loop",
        "http://thishost:2379": "excluded-loop",
        "http://otherhost:2379": "available",
      })
    }),
  )

  it.scoped("onChange sees every new snapshot", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([member(1), member(2)])
      const list = yield* startMemberList(fake, { config })
      const seen: Array<EndpointTable> = []
      list.onChange((table) => seen.push(table))
      list.markFailed(endpoint(list, 1), "ECONNREFUSED")
      expect(seen).toHaveLength(1)
      expect(seen[0]).toBe(list.table())
      expect(seen[0]!.available.map((e) => e.url)).toEqual([clientUrl(2)])
    }),
  )
})

/** Makes `peer` answer `members` instead of the cluster's list (a member replaying its log). */
const answers = (fake: FakeCluster, peer: string, members: ReadonlyArray<Member> | undefined) =>
  Ref.update(fake.answers, (all) => {
    const next = new Map(all)
    if (members === undefined) next.delete(peer)
    else next.set(peer, members)
    return next
  })

const refusals = (lines: ReadonlyArray<LogLine>) =>
  lines
    .filter((l) => l.level === "WARN" && l.message.startsWith("member list answer refused"))
    .map((l) => `${String(l.annotations["peer"])}: ${String(l.annotations["reason"])}`)

const three = () => [member(1), member(2), member(3)]

describe("MemberList trusts only plausible answers (SPEC §5.3)", () => {
  it.scoped("an empty answer (etcd's null) never empties a good list", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster(three())
      const list = yield* startMemberList(fake, { config })
      const before = list.table()
      yield* answers(fake, peerUrl(1), [])
      yield* Ref.set(fake.fetched, [])
      expect(yield* list.refresh).toBe("unchanged")
      expect(yield* Ref.get(fake.fetched)).toEqual([peerUrl(1), peerUrl(2)])
      expect(list.table().keys).toEqual(before.keys)
      // Even when it is the only answer.
      yield* Ref.set(fake.down, new Set([peerUrl(2), peerUrl(3)]))
      expect(yield* list.refresh).toBe("refused")
      expect(sortedKeys(list.table())).toEqual([clientUrl(1), clientUrl(2), clientUrl(3)])
      expect(list.table().available).toHaveLength(3)
    }),
  )

  it.scoped("an answer that leaves out the member that gave it is refused", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster(three())
      const list = yield* startMemberList(fake, { config })
      // What a restarting member answered (observed): another member, without client URLs.
      yield* answers(fake, peerUrl(1), [member(3, { clientURLs: [] })])
      yield* Ref.set(fake.down, new Set([peerUrl(2), peerUrl(3)]))
      expect(yield* list.refresh).toBe("refused")
      expect(sortedKeys(list.table())).toEqual([clientUrl(1), clientUrl(2), clientUrl(3)])
      expect(list.table().members.map((m) => m.name)).toEqual(["m1", "m2", "m3"])
    }),
  )

  it.scoped("a list that loses members is taken when a second member agrees", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster(three())
      const list = yield* startMemberList(fake, { config })
      // m3 is removed: it is gone, and neither remaining member reports a leader.
      yield* Ref.set(fake.members, [member(1), member(2)])
      yield* Ref.set(fake.leaderless, new Set([clientUrl(1), clientUrl(2)]))
      yield* Ref.set(fake.fetched, [])
      expect(yield* list.refresh).toBe("updated")
      expect(yield* Ref.get(fake.fetched)).toEqual([peerUrl(1), peerUrl(2)])
      expect(yield* Ref.get(fake.leaderAsked)).toEqual([])
      expect(sortedKeys(list.table())).toEqual([clientUrl(1), clientUrl(2)])
    }),
  )

  it.scoped("a list that loses members is taken when its member reports a leader", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster(three())
      const list = yield* startMemberList(fake, { config })
      // m2 and m3 are removed; m1 is alone and leads.
      yield* Ref.set(fake.members, [member(1)])
      expect(yield* list.refresh).toBe("updated")
      expect(yield* Ref.get(fake.leaderAsked)).toEqual([clientUrl(1)])
      expect(sortedKeys(list.table())).toEqual([clientUrl(1)])
    }),
  )

  it.scoped("a list that loses members, unconfirmed and without a leader, is refused", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster(three())
      const list = yield* startMemberList(fake, { config })
      // A starting member that has replayed itself only; its client port does not answer yet.
      yield* answers(fake, peerUrl(1), [member(1, { clientURLs: [] })])
      yield* Ref.set(fake.leaderless, new Set([clientUrl(1)]))
      yield* Ref.set(fake.down, new Set([peerUrl(2), peerUrl(3)]))
      expect(yield* list.refresh).toBe("refused")
      expect(yield* Ref.get(fake.leaderAsked)).toEqual([clientUrl(1)])
      expect(sortedKeys(list.table())).toEqual([clientUrl(1), clientUrl(2), clientUrl(3)])
    }),
  )

  it.scoped("a partial list loses to another member's full one, and no leader is asked", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster(three())
      const list = yield* startMemberList(fake, { config })
      yield* answers(fake, peerUrl(1), [member(1), member(2)])
      yield* Ref.set(fake.fetched, [])
      expect(yield* list.refresh).toBe("unchanged")
      expect(yield* Ref.get(fake.fetched)).toEqual([peerUrl(1), peerUrl(2)])
      expect(yield* Ref.get(fake.leaderAsked)).toEqual([])
      expect(sortedKeys(list.table())).toEqual([clientUrl(1), clientUrl(2), clientUrl(3)])
    }),
  )

  it.scoped(
    "members without client URLs keep the client URLs known for them, and their state",
    () =>
      Effect.gen(function* () {
        const fake = yield* makeFakeCluster(three())
        const list = yield* startMemberList(fake, { config })
        list.markFailed(endpoint(list, 2), "ECONNREFUSED")
        yield* answers(
          fake,
          peerUrl(1),
          three().map((m, i) => (i === 0 ? m : member(i + 1, { clientURLs: [] }))),
        )
        yield* Ref.set(fake.fetched, [])
        expect(yield* list.refresh).toBe("unchanged")
        expect(yield* Ref.get(fake.fetched)).toEqual([peerUrl(1)])
        expect(states(list)).toEqual({
          [clientUrl(1)]: "available",
          [clientUrl(2)]: "failed",
          [clientUrl(3)]: "available",
        })
        expect(list.table().members.map((m) => m.clientURLs)).toEqual([
          [clientUrl(1)],
          [clientUrl(2)],
          [clientUrl(3)],
        ])
        // A plausible answer that names other client URLs replaces them.
        yield* answers(fake, peerUrl(1), undefined)
        yield* Ref.set(fake.members, [
          member(1),
          member(2),
          member(3, { clientURLs: ["http://10.0.0.33:2379"] }),
        ])
        expect(yield* list.refresh).toBe("updated")
        expect(sortedKeys(list.table())).toEqual([
          clientUrl(1),
          clientUrl(2),
          "http://10.0.0.33:2379",
        ])
      }),
  )

  it.scoped(
    "a member known without client URLs is kept, asked and saved, but gives no endpoint",
    () =>
      Effect.gen(function* () {
        const fake = yield* makeFakeCluster([member(1), member(2)])
        const list = yield* startMemberList(fake, { config })
        // `member add`: m3 is in the cluster before it ever started.
        yield* Ref.set(fake.members, [member(1), member(2), member(3, { clientURLs: [] })])
        expect(yield* list.refresh).toBe("unchanged")
        expect(sortedKeys(list.table())).toEqual([clientUrl(1), clientUrl(2)])
        expect(list.table().members.map((m) => m.name)).toEqual(["m1", "m2", "m3"])
        expect(yield* list.peerUrls).toEqual([peerUrl(1), peerUrl(2), peerUrl(3)])
        expect((yield* Ref.get(fake.writes)).at(-1)).toEqual([peerUrl(1), peerUrl(2), peerUrl(3)])
        // It starts and publishes its client URL.
        yield* Ref.set(fake.members, three())
        expect(yield* list.refresh).toBe("updated")
        expect(sortedKeys(list.table())).toEqual([clientUrl(1), clientUrl(2), clientUrl(3)])
      }),
  )

  it.scoped("a refused answer does not narrow the peers asked next", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster(three())
      // Configured with member 1 only: the others are known from its answers.
      const list = yield* startMemberList(fake, { config, peers: [peerUrl(1)] })
      yield* answers(fake, peerUrl(1), [member(1)])
      yield* Ref.set(fake.leaderless, new Set([clientUrl(1)]))
      yield* Ref.set(fake.down, new Set([peerUrl(2), peerUrl(3)]))
      expect(yield* list.refresh).toBe("refused")
      expect(yield* list.peerUrls).toEqual([peerUrl(1), peerUrl(2), peerUrl(3)])
      yield* Ref.set(fake.down, new Set([peerUrl(1)]))
      yield* Ref.set(fake.fetched, [])
      expect(yield* list.refresh).toBe("unchanged")
      expect(yield* Ref.get(fake.fetched)).toEqual([peerUrl(1), peerUrl(2)])
    }),
  )

  it.scoped("the cluster source's peers are asked even when no member list names them", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([member(1)])
      const list = yield* startMemberList(fake, { config, peers: [peerUrl(1), peerUrl(2)] })
      expect(sortedKeys(list.table())).toEqual([clientUrl(1)])
      // m1 goes away; m2 (named by the source only) is back.
      yield* Ref.set(fake.members, [member(2)])
      yield* Ref.set(fake.fetched, [])
      expect(yield* list.refresh).toBe("updated")
      expect(yield* Ref.get(fake.fetched)).toEqual([peerUrl(1), peerUrl(2)])
      expect(sortedKeys(list.table())).toEqual([clientUrl(2)])
    }),
  )

  it.scoped("at start, a partial answer is not taken while another peer gives the whole list", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster(three())
      // The first peer is replaying its log: it knows itself, with its client URL, only.
      yield* answers(fake, peerUrl(1), [member(1)])
      const list = yield* startMemberList(fake, { config })
      expect(yield* Ref.get(fake.fetched)).toEqual([peerUrl(1), peerUrl(2)])
      expect(sortedKeys(list.table())).toEqual([clientUrl(1), clientUrl(2), clientUrl(3)])
    }),
  )

  it.scoped("a list naming another cluster id needs a second member of that cluster", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster(three())
      const list = yield* startMemberList(fake, { config })
      yield* Ref.set(fake.clusterIds, new Map([[peerUrl(1), "aaaa"]]))
      expect(yield* list.refresh).toBe("unchanged")
      expect(yield* Ref.get(fake.leaderAsked)).toEqual([])
      // The whole cluster was rebuilt under a new id: two members agree.
      yield* Ref.set(
        fake.clusterIds,
        new Map([
          [peerUrl(1), "aaaa"],
          [peerUrl(2), "aaaa"],
          [peerUrl(3), "aaaa"],
        ]),
      )
      yield* Ref.set(fake.fetched, [])
      expect(yield* list.refresh).toBe("unchanged")
      expect(yield* Ref.get(fake.fetched)).toEqual([peerUrl(1), peerUrl(2)])
      yield* Ref.set(fake.fetched, [])
      yield* list.refresh
      expect(yield* Ref.get(fake.fetched)).toEqual([peerUrl(1)])
    }),
  )

  it.scoped("a peer named by host name is recognised in an answer that gives its address", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster(three())
      yield* Ref.set(fake.hosts, new Map([["node1", ["10.0.0.1"]]]))
      yield* answers(fake, "http://node1:2380", three())
      yield* answers(fake, "http://elsewhere:2380", three())
      const list = yield* startMemberList(fake, {
        config,
        peers: ["http://elsewhere:2380", "http://node1:2380"],
      })
      // elsewhere does not resolve to any member: its answer does not include the member asked.
      expect(yield* Ref.get(fake.fetched)).toEqual(["http://elsewhere:2380", "http://node1:2380"])
      expect(sortedKeys(list.table())).toEqual([clientUrl(1), clientUrl(2), clientUrl(3)])
    }),
  )

  it.scoped("a refused answer is logged once per episode, with the peer and why", () =>
    Effect.gen(function* () {
      const logs = yield* captureLogs
      const fake = yield* makeFakeCluster(three())
      yield* startMemberList(fake, { config })
      yield* answers(fake, peerUrl(1), [])
      yield* TestClock.adjust(Duration.millis(30_000))
      expect(yield* fetchCount(fake)).toBe(7)
      expect(refusals(logs)).toEqual([`${peerUrl(1)}: answered an empty member list`])
      // Another shape from the same peer is a new warning; the same shape again is not.
      yield* answers(fake, peerUrl(1), [member(2)])
      yield* TestClock.adjust(Duration.millis(30_000))
      expect(refusals(logs)).toHaveLength(2)
      expect(refusals(logs)[1]).toContain("does not include the member at")
      // The episode ends when the peer answers plausibly; a new one warns again.
      yield* answers(fake, peerUrl(1), undefined)
      yield* TestClock.adjust(refreshInterval)
      yield* answers(fake, peerUrl(1), [member(2)])
      yield* TestClock.adjust(refreshInterval)
      expect(refusals(logs)).toHaveLength(3)
      // The list changed once, when it was first taken.
      expect(logs.filter((l) => l.message === "member list changed")).toHaveLength(1)
    }),
  )

  it.scoped("with a refresh interval under 1 s, an empty list is retried at that interval", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([member(1)])
      yield* Ref.set(fake.down, "all")
      const list = yield* startMemberList(fake, {
        config: { ...config, refreshInterval: Duration.millis(200) },
      })
      expect(list.table().all).toHaveLength(0)
      yield* TestClock.adjust(Duration.millis(199))
      expect(yield* fetchCount(fake)).toBe(1)
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* fetchCount(fake)).toBe(2)
      yield* TestClock.adjust(Duration.millis(800))
      expect(yield* fetchCount(fake)).toBe(6)
      yield* Ref.set(fake.down, new Set<string>())
      yield* TestClock.adjust(Duration.millis(200))
      expect(list.table().available).toHaveLength(1)
    }),
  )
})

describe("MemberList cluster file", () => {
  it.scoped("is written after a refresh that changed the peers, and only then", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([member(2), member(1)])
      const list = yield* startMemberList(fake, { config })
      expect(yield* Ref.get(fake.writes)).toEqual([[peerUrl(1), peerUrl(2)]])
      yield* TestClock.adjust(refreshInterval)
      yield* list.refresh
      expect(yield* Ref.get(fake.writes)).toHaveLength(1)
      yield* Ref.set(fake.members, [member(1), member(2), member(3)])
      yield* TestClock.adjust(refreshInterval)
      expect(yield* Ref.get(fake.writes)).toEqual([
        [peerUrl(1), peerUrl(2)],
        [peerUrl(1), peerUrl(2), peerUrl(3)],
      ])
    }),
  )

  it.scoped("is not rewritten when the saved file already holds the peers", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([member(1), member(2)])
      yield* Ref.set(fake.saved, Option.some([peerUrl(2), peerUrl(1)]))
      yield* startMemberList(fake, { config })
      expect(yield* fetchCount(fake)).toBe(1)
      expect(yield* Ref.get(fake.writes)).toEqual([])
    }),
  )

  it.scoped("is not written from an answer the proxy refused", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([member(1), member(2)])
      const list = yield* startMemberList(fake, { config })
      yield* answers(fake, peerUrl(1), [member(1), member(3)])
      yield* Ref.set(fake.leaderless, new Set([clientUrl(1)]))
      yield* Ref.set(fake.down, new Set([peerUrl(2)]))
      expect(yield* list.refresh).toBe("refused")
      expect(yield* Ref.get(fake.writes)).toEqual([[peerUrl(1), peerUrl(2)]])
    }),
  )

  it.scoped("is not written by a failed refresh", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([member(1)])
      yield* Ref.set(fake.down, "all")
      yield* startMemberList(fake, { config })
      yield* TestClock.adjust(Duration.seconds(3))
      expect(yield* fetchCount(fake)).toBe(4)
      expect(yield* Ref.get(fake.writes)).toEqual([])
    }),
  )
})

describe("MemberList while discovery is pending", () => {
  it.scoped("is built at once, and refreshes as soon as the peers are known", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([member(1)])
      const found = yield* Deferred.make<ReadonlyArray<string>>()
      const list = yield* startMemberList(fake, {
        config,
        discovery: {
          source: "--discovery",
          status: () => ({ _tag: "Pending", registered: 0, size: 1 }),
          peerUrls: Deferred.await(found),
        },
      })
      yield* TestClock.adjust(Duration.minutes(5))
      expect(yield* fetchCount(fake)).toBe(0)
      expect(list.table().all).toHaveLength(0)
      yield* Deferred.succeed(found, [peerUrl(1)])
      yield* TestClock.adjust(Duration.zero)
      expect(yield* fetchCount(fake)).toBe(1)
      expect(sortedKeys(list.table())).toEqual([clientUrl(1)])
      yield* TestClock.adjust(refreshInterval)
      expect(yield* fetchCount(fake)).toBe(2)
    }),
  )
})

describe("MemberList scope", () => {
  it.effect("stops refreshing when its scope closes", () =>
    Effect.gen(function* () {
      const fake = yield* makeFakeCluster([member(1)])
      yield* Effect.scoped(startMemberList(fake, { config }))
      yield* TestClock.adjust(Duration.minutes(1))
      expect(yield* fetchCount(fake)).toBe(1)
    }),
  )
})
