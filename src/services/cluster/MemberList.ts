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
import { normalizeHost, pointsAtListener, type OwnAddresses } from "../../domain/Loop.js"
import type { Member } from "../../domain/Member.js"
import {
  confirms,
  judgeAnswer,
  peerKey,
  peersToAsk,
  samePeerUrl,
  unconfirmedReason,
  type Plausible,
  type TrustedList,
} from "../../domain/MemberAnswer.js"
import { DataDir } from "../DataDir.js"
import { Discovery } from "./Discovery.js"
import { MemberClient } from "./MemberClient.js"
import { Metrics } from "../Metrics.js"

/** What the hot path reports about an endpoint; handled by the member list's own fiber. */
type EndpointEvent =
  | { readonly _tag: "Failed"; readonly endpoint: Endpoint; readonly error: string }
  | { readonly _tag: "Suspect"; readonly endpoint: Endpoint; readonly error: string }
  | { readonly _tag: "Loop"; readonly endpoint: Endpoint; readonly via: string }

/** `refused`: peers answered, but no answer could be trusted; `failed`: none answered. */
export type RefreshResult = "updated" | "unchanged" | "failed" | "refused"

type RefusalKind = "empty" | "not-self" | "unconfirmed"

interface Refusal {
  readonly kind: RefusalKind
  readonly reason: string
}

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
    /** The cluster id of the trusted list; a list naming another one needs a second member. */
    let clusterId: string | undefined
    let failedInARow = 0
    /** The cluster source's peer URLs: always asked, whatever the members answer. */
    const sourcePeers = yield* Ref.make<ReadonlyArray<string>>([])
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

    /**
     * Whether a member's peer URL is the one asked. A cluster source may name a member by
     * another host name or address than the member advertises: compare resolved addresses then.
     */
    const askedPeerMatcher = (peer: string, members: ReadonlyArray<Member>) =>
      Effect.gen(function* () {
        const urls = members.flatMap((m) => m.peerURLs)
        if (urls.some((url) => samePeerUrl(url, peer))) {
          return (url: string) => samePeerUrl(url, peer)
        }
        const keysOf = (url: string) =>
          Effect.gen(function* () {
            const key = peerKey(url)
            if (key === undefined) return new Set<string>()
            const parsed = new URL(url)
            const host = normalizeHost(parsed.hostname)
            if (isIP(host) !== 0) return new Set([key])
            const port =
              parsed.port !== "" ? parsed.port : parsed.protocol === "https:" ? "443" : "80"
            const addresses = yield* client.resolve(host)
            return new Set(addresses.map((a) => `${parsed.protocol}//${normalizeHost(a)}:${port}`))
          })
        const asked = yield* keysOf(peer)
        const matching = new Set<string>()
        for (const url of new Set(urls)) {
          const keys = yield* keysOf(url)
          if ([...keys].some((key) => asked.has(key))) matching.add(url)
        }
        return (url: string) => matching.has(url)
      })

    /** Whether the member reports a leader on any of its client URLs. */
    const reportsLeader = (member: Member) =>
      Effect.gen(function* () {
        for (const url of member.clientURLs) {
          if (Option.isSome(yield* client.leaderOf(url))) return true
        }
        return false
      })

    /** Peers whose answers are being refused, and why; a warning starts each episode. */
    let refusing = new Map<string, RefusalKind>()

    const logRefusals = (asked: ReadonlyArray<string>, refused: ReadonlyMap<string, Refusal>) =>
      Effect.gen(function* () {
        const next = new Map([...refusing].filter(([peer]) => !asked.includes(peer)))
        for (const [peer, refusal] of refused) {
          const log = refusing.get(peer) === refusal.kind ? Effect.logDebug : Effect.logWarning
          yield* log("member list answer refused; the proxy keeps what it knows").pipe(
            Effect.annotateLogs({ peer, reason: refusal.reason, error: "ImplausibleMemberList" }),
          )
          next.set(peer, refusal.kind)
        }
        for (const peer of refusing.keys()) {
          if (asked.includes(peer) && !refused.has(peer)) {
            yield* Effect.logDebug("member answers with a plausible member list again").pipe(
              Effect.annotateLogs({ peer }),
            )
          }
        }
        refusing = next
      })

    /**
     * Asks the peers of every member known, in sorted order, and picks the answer to trust
     * (SPEC §5.3): the first plausible one that loses no member and gives every member a client
     * URL; else one that loses members but is confirmed by a second member; else, of the
     * plausible lossless ones, the one with the most endpoints; else one that loses members
     * from a member that reports a leader.
     */
    const askPeers = Effect.gen(function* () {
      const trusted: TrustedList = { clusterId, members: table.members }
      const source = yield* Ref.get(sourcePeers)
      const peers = peersToAsk(source, trusted.members)
      const asked: Array<string> = []
      const failures: Array<string> = []
      const refused = new Map<string, Refusal>()
      const shrinking: Array<Plausible> = []
      const partial: Array<Plausible> = []
      let taken: Plausible | undefined
      // Before a first list, an answer that does not name every peer of the cluster source may
      // be a starting member's partial one: ask the others too.
      const coversSource = (judgement: Plausible) =>
        trusted.members.length > 0 ||
        source.every((peer) =>
          judgement.members.some((m) => m.peerURLs.some((url) => samePeerUrl(url, peer))),
        )

      for (const peer of peers) {
        asked.push(peer)
        const answer = yield* Effect.either(client.fetchMembers(peer))
        if (Either.isLeft(answer)) {
          failures.push(`${peer}: ${answer.left.reason}`)
          continue
        }
        const isAsked = yield* askedPeerMatcher(peer, answer.right.members)
        const judgement = judgeAnswer({ peer, ...answer.right }, trusted, isAsked)
        if (judgement._tag === "Refused") {
          refused.set(peer, { kind: judgement.kind, reason: judgement.reason })
          continue
        }
        if (judgement.lost.length === 0) {
          if (judgement.complete && coversSource(judgement)) {
            taken = judgement
            break
          }
          partial.push(judgement)
          continue
        }
        if (shrinking.some((other) => confirms(other, judgement))) {
          taken = judgement
          break
        }
        shrinking.push(judgement)
      }
      if (taken === undefined && partial.length > 0) {
        taken = partial.reduce((best, j) => (j.clientUrlCount > best.clientUrlCount ? j : best))
      }
      if (taken === undefined) {
        for (const candidate of shrinking) {
          if (yield* reportsLeader(candidate.answering)) {
            taken = candidate
            break
          }
        }
      }
      for (const judgement of shrinking) {
        if (judgement === taken || (taken !== undefined && confirms(judgement, taken))) continue
        refused.set(judgement.peer, {
          kind: "unconfirmed",
          reason: unconfirmedReason(judgement, trusted, taken !== undefined),
        })
      }
      for (const judgement of partial) {
        if (judgement !== taken) {
          yield* Effect.logDebug("member list answer without some client URLs; another taken").pipe(
            Effect.annotateLogs({ peer: judgement.peer }),
          )
        }
      }
      yield* logRefusals(asked, refused)
      if (taken !== undefined) return Either.right(taken)
      const reasons = [
        ...failures,
        ...[...refused].map(([peer, refusal]) => `${peer}: refused: ${refusal.reason}`),
      ]
      return Either.left({
        refused: refused.size > 0,
        reason: reasons.length === 0 ? "no peer URLs known" : reasons.join("; "),
      })
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

    /** One refresh; when no answer can be trusted, keep the last good list (SPEC §5.2, §5.3). */
    const refresh: Effect.Effect<RefreshResult> = Effect.gen(function* () {
      const answer = yield* askPeers
      if (Either.isLeft(answer)) {
        metrics.refresh("failure")
        failedInARow += 1
        // One warning per outage; the retries while nothing is available log at debug.
        const log = failedInARow === 1 ? Effect.logWarning : Effect.logDebug
        yield* log("member list refresh failed; keeping the last good list").pipe(
          Effect.annotateLogs({
            error: "MemberFetchError",
            reason: answer.left.reason,
            endpoints: table.all.length,
            attempt: failedInARow,
          }),
        )
        if (answer.left.refused) return "refused" as const
        // No peer answered at all: the members may be gone with nothing sent through them, so
        // their health decides whether readiness still counts them (SPEC §8.6).
        for (const endpoint of table.available) suspect(endpoint, "MemberFetchError")
        return "failed" as const
      }
      metrics.refresh("success")
      if (failedInARow > 0) {
        yield* Effect.logInfo("member list refresh succeeded again").pipe(
          Effect.annotateLogs({ failedBefore: failedInARow }),
        )
        failedInARow = 0
      }
      const { members } = answer.right
      clusterId = answer.right.clusterId
      const before = table
      let next = tableFromMembers(members, before, yield* isOwnListener(members))
      const setChanged = !sameSet(before, next)
      if (setChanged) next = next.reorder(yield* shuffled(next.all))
      swap(next)
      yield* logTableChange(before, next)

      const learned = [...new Set(members.flatMap((m) => m.peerURLs))].sort()
      if (learned.length > 0) {
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
    /**
     * The first probe comes after the failure wait; the next ones at least 100 ms apart, or
     * `--proxy-failure-wait 0` probes a dead member in a busy loop that takes a CPU core.
     */
    const revive = (endpoint: Endpoint) =>
      Effect.gen(function* () {
        let wait = config.failureWait
        while (true) {
          yield* Effect.sleep(wait)
          wait = Duration.max(config.failureWait, Duration.millis(100))
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

    const markFailed = (endpoint: Endpoint, error: string): void => {
      const next = table.markFailed(endpoint.key)
      if (next === table) return
      swapFromHotPath(next)
      Queue.unsafeOffer(events, { _tag: "Failed", endpoint, error })
    }

    /** Endpoints whose health is being asked after a suspect connection loss or refresh. */
    const suspected = new Set<string>()

    /**
     * A member dropped a connection after a request went out on it, or no peer answered a
     * refresh. That can be the member failing, or the member refusing what the client sent
     * (etcd closes a new connection whose request line is over 4 KiB): its health, asked on a
     * connection of its own, decides (SPEC §3.13: nothing a client sends marks a member failed).
     */
    const judge = (endpoint: Endpoint, error: string) =>
      Effect.gen(function* () {
        if (yield* client.probeHealth(endpoint.url)) {
          yield* Effect.logDebug("a suspect member answers health; it stays available").pipe(
            Effect.annotateLogs({ member: endpoint.member, endpoint: endpoint.url, error }),
          )
          return
        }
        markFailed(endpoint, error)
      }).pipe(Effect.ensuring(Effect.sync(() => suspected.delete(endpoint.key))))

    function suspect(endpoint: Endpoint, error: string): void {
      if (suspected.has(endpoint.key) || table.get(endpoint.key)?.state !== "available") return
      suspected.add(endpoint.key)
      Queue.unsafeOffer(events, { _tag: "Suspect", endpoint, error })
    }

    const handleEvent = (event: EndpointEvent) => {
      switch (event._tag) {
        case "Failed":
          return Effect.logWarning("endpoint marked failed").pipe(
            Effect.annotateLogs({
              member: event.endpoint.member,
              endpoint: event.endpoint.url,
              error: event.error,
              wait: Duration.format(config.failureWait),
            }),
            Effect.zipRight(Effect.forkScoped(revive(event.endpoint))),
          )
        case "Suspect":
          return Effect.asVoid(Effect.forkScoped(judge(event.endpoint, event.error)))
        case "Loop":
          return Effect.logWarning(
            "forwarding loop detected; endpoint excluded until the next refresh",
          ).pipe(
            Effect.annotateLogs({
              member: event.endpoint.member,
              endpoint: event.endpoint.url,
              via: event.via,
              error: "LoopDetected",
            }),
          )
      }
    }

    yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(events), handleEvent)))

    const onDisk = yield* dataDir.readCluster.pipe(Effect.orElseSucceed(() => Option.none()))
    yield* Ref.set(
      savedPeers,
      Option.match(onDisk, { onNone: () => "", onSome: (ps) => [...ps].sort().join(",") }),
    )
    const initialPeers = (ps: ReadonlyArray<string>) =>
      Ref.set(
        sourcePeers,
        ps.map((p) => p.replace(/\/+$/, "")),
      )

    // While nothing is available, every second, or at the refresh interval when that is shorter.
    const outageDelay = Duration.min(Duration.seconds(1), config.refreshInterval)

    /** Refresh every interval; while nothing is available, at least every second (SPEC §5.2). */
    const refreshLoop = Effect.gen(function* () {
      while (true) {
        const delay = table.available.length === 0 ? outageDelay : config.refreshInterval
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
      /** The peer URLs the next refresh asks: the cluster source's and every member's. */
      peerUrls: Effect.map(Ref.get(sourcePeers), (source) => peersToAsk(source, table.members)),
      /** Called by the hot path when a connection to the endpoint failed. */
      markFailed,
      /**
       * Called by the hot path when the member dropped a connection a request had gone out on:
       * the endpoint is marked failed only if its health does not answer either.
       */
      suspect,
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
