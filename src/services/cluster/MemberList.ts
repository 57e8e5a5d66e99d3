/** The member list (SPEC §5): refreshed on a schedule, with failure marks, probes and loop exclusion. */
import { networkInterfaces } from "node:os"
import { isIP } from "node:net"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Ref from "effect/Ref"
import { ProxyConfig } from "../../domain/Config.js"
import {
  EndpointTable,
  fisherYates,
  tableFromMembers,
  type Endpoint,
} from "../../domain/Endpoints.js"
import { pointsAtListener, type OwnAddresses } from "../../domain/Loop.js"
import type { Member } from "../../domain/Member.js"
import { DataDir } from "./DataDir.js"
import { Discovery } from "./Discovery.js"
import { MemberClient } from "./MemberClient.js"
import { Metrics } from "../Metrics.js"

/** What the hot path reports about an endpoint; handled by the member list's own fiber. */
type EndpointEvent =
  | { readonly _tag: "Failed"; readonly endpoint: Endpoint; readonly error: string }
  | { readonly _tag: "Loop"; readonly endpoint: Endpoint; readonly via: string }

export type RefreshResult = "updated" | "unchanged" | "failed"

const localAddresses = (): ReadonlyArray<string> =>
  Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address))

/** Shuffles with Effect's `Random`, so tests can seed it. */
export const shuffled = <A>(items: ReadonlyArray<A>): Effect.Effect<ReadonlyArray<A>> =>
  Effect.map(
    Effect.forEach(
      items.map((_, i) => i),
      () => Random.next,
    ),
    (draws) => {
      let next = 0
      return fisherYates(items, (n) => Math.floor(draws[next++]! * n))
    },
  )

const stateCounts = (table: EndpointTable): Record<string, number> => {
  const counts: Record<string, number> = { available: 0, failed: 0, "excluded-loop": 0 }
  for (const endpoint of table.all) counts[endpoint.state]! += 1
  return counts
}

export class MemberList extends Effect.Service<MemberList>()("etcd-proxy/MemberList", {
  scoped: Effect.gen(function* () {
    const config = yield* ProxyConfig
    const discovery = yield* Discovery
    const client = yield* MemberClient
    const dataDir = yield* DataDir
    const metrics = yield* Metrics

    const own: OwnAddresses = { listeners: config.listenUrls, local: localAddresses() }
    let table = EndpointTable.empty
    const peers = yield* Ref.make<ReadonlyArray<string>>([])
    const savedPeers = yield* Ref.make<string>("")
    const events = yield* Queue.unbounded<EndpointEvent>()
    const wake = yield* Queue.sliding<void>(1)
    const changeListeners: Array<(table: EndpointTable) => void> = []

    const swap = (next: EndpointTable): void => {
      if (next === table) return
      table = next
      metrics.setEndpoints(stateCounts(next))
      for (const listener of changeListeners) listener(next)
    }

    /**
     * The hot path took the last available endpoint away: refresh now instead of at the next
     * tick. Only the hot path wakes the loop; a refresh that finds nothing available must not,
     * or it would ask the peers again at once, forever.
     */
    const swapFromHotPath = (next: EndpointTable): void => {
      const hadAvailable = table.available.length > 0
      swap(next)
      if (hadAvailable && next.available.length === 0) Queue.unsafeOffer(wake, undefined)
    }

    /** Loop check for one client URL, resolving host names so `http://thishost:2379` counts too. */
    const isOwnListener = (members: ReadonlyArray<Member>) =>
      Effect.gen(function* () {
        const hosts = new Set<string>()
        for (const member of members) {
          for (const clientUrl of member.clientURLs) {
            const host = URL.canParse(clientUrl) ? new URL(clientUrl).hostname : ""
            if (host !== "" && host !== "localhost" && isIP(host.replace(/^\[|\]$/g, "")) === 0) {
              hosts.add(host)
            }
          }
        }
        const resolved = new Map<string, ReadonlyArray<string>>()
        yield* Effect.forEach(
          hosts,
          (host) => Effect.map(client.resolve(host), (addresses) => resolved.set(host, addresses)),
          { concurrency: 8, discard: true },
        )
        return (url: URL) => pointsAtListener(own, url, resolved.get(url.hostname) ?? [])
      })

    const fetchFromAnyPeer = Effect.gen(function* () {
      const reasons: Array<string> = []
      for (const peer of [...(yield* Ref.get(peers))].sort()) {
        const answer = yield* Effect.either(client.fetchMembers(peer))
        if (Either.isRight(answer)) return Either.right(answer.right.members)
        reasons.push(`${peer}: ${answer.left.reason}`)
      }
      return Either.left(reasons.length === 0 ? "no peer URLs known" : reasons.join("; "))
    })

    const logTableChange = (before: EndpointTable, after: EndpointTable) =>
      Effect.gen(function* () {
        const added = after.all.filter((e) => before.get(e.key) === undefined)
        const removed = before.all.filter((e) => after.get(e.key) === undefined)
        if (added.length > 0 || removed.length > 0) {
          yield* Effect.logInfo("member list changed").pipe(
            Effect.annotateLogs({
              added: added.map((e) => `${e.member}=${e.url}`).join(","),
              removed: removed.map((e) => `${e.member}=${e.url}`).join(","),
              endpoints: after.all.length,
            }),
          )
        }
        for (const endpoint of after.all) {
          if (endpoint.state !== "excluded-loop") continue
          metrics.loop("advertised")
          yield* Effect.logWarning("member client URL points at this proxy; excluded").pipe(
            Effect.annotateLogs({
              member: endpoint.member,
              endpoint: endpoint.url,
              error: "LoopDetected",
            }),
          )
        }
      })

    let failedInARow = 0

    /** One refresh: ask the peers in sorted order; on failure keep the last good list (SPEC §5.2). */
    const refresh: Effect.Effect<RefreshResult> = Effect.gen(function* () {
      const answer = yield* fetchFromAnyPeer
      if (Either.isLeft(answer)) {
        metrics.refresh("failure")
        failedInARow += 1
        // One warning per outage; the 1 s retries while nothing is available log at debug.
        const log = failedInARow === 1 ? Effect.logWarning : Effect.logDebug
        yield* log("member list refresh failed; keeping the last good list").pipe(
          Effect.annotateLogs({
            error: "MemberFetchError",
            reason: answer.left,
            endpoints: table.all.length,
            attempt: failedInARow,
          }),
        )
        return "failed" as const
      }
      metrics.refresh("success")
      if (failedInARow > 0) {
        yield* Effect.logInfo("member list refresh succeeded again").pipe(
          Effect.annotateLogs({ failedBefore: failedInARow }),
        )
        failedInARow = 0
      }
      const members = answer.right
      const before = table
      let next = tableFromMembers(members, before, yield* isOwnListener(members))
      const setChanged = !sameSet(before, next)
      if (setChanged) next = next.reorder(yield* shuffled(next.all))
      swap(next)
      yield* logTableChange(before, next)

      const learned = [...new Set(members.flatMap((m) => m.peerURLs))].sort()
      if (learned.length > 0) {
        yield* Ref.set(peers, learned)
        const encoded = learned.join(",")
        if (encoded !== (yield* Ref.get(savedPeers))) {
          yield* dataDir.writeCluster(learned).pipe(
            Effect.tap(() => Ref.set(savedPeers, encoded)),
            Effect.catchAll((error) =>
              Effect.logWarning("could not save the cluster file").pipe(
                Effect.annotateLogs({ error: error._tag, reason: error.message }),
              ),
            ),
          )
        }
      }
      return setChanged ? ("updated" as const) : ("unchanged" as const)
    }).pipe(Effect.withSpan("MemberList.refresh"))

    /** After its failure wait, a failed endpoint returns only once `GET /health` answers (SPEC §5.5). */
    const revive = (endpoint: Endpoint) =>
      Effect.gen(function* () {
        while (true) {
          yield* Effect.sleep(config.failureWait)
          if (table.get(endpoint.key)?.state !== "failed") return
          if (yield* client.probeHealth(endpoint.url)) {
            swap(table.markAvailable(endpoint.key))
            yield* Effect.logInfo("endpoint returned").pipe(
              Effect.annotateLogs({ member: endpoint.member, endpoint: endpoint.url }),
            )
            return
          }
        }
      })

    const handleEvent = (event: EndpointEvent) =>
      event._tag === "Failed"
        ? Effect.logWarning("endpoint marked failed").pipe(
            Effect.annotateLogs({
              member: event.endpoint.member,
              endpoint: event.endpoint.url,
              error: event.error,
              wait: Duration.format(config.failureWait),
            }),
            Effect.zipRight(Effect.forkScoped(revive(event.endpoint))),
          )
        : Effect.logWarning(
            "forwarding loop detected; endpoint excluded until the next refresh",
          ).pipe(
            Effect.annotateLogs({
              member: event.endpoint.member,
              endpoint: event.endpoint.url,
              via: event.via,
              error: "LoopDetected",
            }),
          )

    yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(events), handleEvent)))

    const onDisk = yield* dataDir.readCluster.pipe(Effect.orElseSucceed(() => Option.none()))
    yield* Ref.set(
      savedPeers,
      Option.match(onDisk, { onNone: () => "", onSome: (ps) => [...ps].sort().join(",") }),
    )
    const initialPeers = (ps: ReadonlyArray<string>) => Ref.set(peers, ps)

    /** Refresh every interval; while nothing is available, every second (SPEC §5.2). */
    const refreshLoop = Effect.gen(function* () {
      while (true) {
        const delay = table.available.length === 0 ? Duration.seconds(1) : config.refreshInterval
        yield* Effect.raceFirst(Effect.sleep(delay), Queue.take(wake))
        yield* refresh
      }
    })

    // Like etcd, the first refresh happens before the proxy serves, unless discovery is still
    // pending: then the listener answers 503 DiscoveryPending meanwhile.
    if (discovery.status()._tag === "Complete") {
      yield* initialPeers(yield* discovery.peerUrls)
      yield* refresh
      yield* Queue.takeAll(wake)
      yield* Effect.forkScoped(refreshLoop)
    } else {
      yield* Effect.forkScoped(
        Effect.gen(function* () {
          yield* initialPeers(yield* discovery.peerUrls)
          yield* refresh
          yield* Queue.takeAll(wake)
          yield* refreshLoop
        }),
      )
    }

    return {
      /** The current snapshot; read synchronously on every request. */
      table: (): EndpointTable => table,
      refresh,
      peerUrls: Ref.get(peers),
      /** Called by the hot path when a connection to the endpoint failed. */
      markFailed: (endpoint: Endpoint, error: string): void => {
        const next = table.markFailed(endpoint.key)
        if (next === table) return
        swapFromHotPath(next)
        Queue.unsafeOffer(events, { _tag: "Failed", endpoint, error })
      },
      /** Called by the hot path when a request sent through the endpoint came back to us. */
      excludeLoop: (endpoint: Endpoint, via: string): void => {
        const next = table.excludeLoop(endpoint.key)
        if (next === table) return
        // No early refresh: it would put the endpoint straight back into the loop.
        swap(next)
        metrics.loop("via")
        Queue.unsafeOffer(events, { _tag: "Loop", endpoint, via })
      },
      reorder: (order: (all: ReadonlyArray<Endpoint>) => Effect.Effect<ReadonlyArray<Endpoint>>) =>
        Effect.flatMap(
          Effect.suspend(() => order(table.all)),
          (all) => Effect.sync(() => swap(table.reorder(all))),
        ),
      onChange: (listener: (table: EndpointTable) => void): void => {
        changeListeners.push(listener)
      },
    } as const
  }),
}) {}

const sameSet = (a: EndpointTable, b: EndpointTable): boolean =>
  a.all.length === b.all.length && a.all.every((e) => b.get(e.key) !== undefined)
