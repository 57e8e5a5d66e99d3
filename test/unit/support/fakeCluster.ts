/**
 * A scripted cluster for unit tests of MemberList and Shuffler: a fake MemberClient answering
 * from refs the test controls, a DataDir that records writes, and the real Metrics.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as HashMap from "effect/HashMap"
import * as HashSet from "effect/HashSet"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import { makeProxyConfig, ProxyConfig, type ProxyConfigShape } from "../../../src/domain/Config.js"
import { Member, type MemberId } from "../../../src/domain/Member.js"
import { DataDir } from "../../../src/services/DataDir.js"
import { Discovery, type DiscoveryShape } from "../../../src/services/cluster/Discovery.js"
import { MemberClient, MemberFetchError } from "../../../src/services/cluster/MemberClient.js"
import { MemberList } from "../../../src/services/cluster/MemberList.js"
import { Metrics } from "../../../src/services/Metrics.js"
import { Shuffler } from "../../../src/services/cluster/Shuffler.js"

/** A started member at `10.0.0.<n>`: peer port 2380, client port 2379. */
export const member = (
  n: number,
  options: { readonly clientURLs?: ReadonlyArray<string>; readonly isLearner?: boolean } = {},
) =>
  new Member({
    id: String(10276657743932975437n + BigInt(n)) as MemberId,
    name: `m${n}`,
    peerURLs: [peerUrl(n)],
    clientURLs: options.clientURLs ?? [clientUrl(n)],
    isLearner: options.isLearner ?? false,
  })

export const peerUrl = (n: number) => `http://10.0.0.${n}:2380`
export const clientUrl = (n: number) => `http://10.0.0.${n}:2379`

export interface FakeCluster {
  /**
   * The cluster's members: what every member's peer answers to `GET /members`. A peer URL no
   * member has refuses connections (a removed member is gone).
   */
  readonly members: Ref.Ref<ReadonlyArray<Member>>
  /** What one peer answers instead, e.g. a member replaying its log; `[]` is etcd's `null`. */
  readonly answers: Ref.Ref<ReadonlyMap<string, ReadonlyArray<Member>>>
  /** The cluster id each peer answers with (default: one id for all). */
  readonly clusterIds: Ref.Ref<ReadonlyMap<string, string>>
  /** Client URLs whose member reports no leader (default: every member reports one). */
  readonly leaderless: Ref.Ref<ReadonlySet<string>>
  /** Every client URL asked for its leader, in order. */
  readonly leaderAsked: Ref.Ref<ReadonlyArray<string>>
  /** Peers whose `/members` fails; `"all"` makes every peer fail. */
  readonly down: Ref.Ref<ReadonlySet<string> | "all">
  /** Every peer asked, in order. */
  readonly fetched: Ref.Ref<ReadonlyArray<string>>
  /** Client URLs whose `/health` probe answers. */
  readonly healthy: Ref.Ref<ReadonlySet<string>>
  /** Every client URL probed, in order. */
  readonly probed: Ref.Ref<ReadonlyArray<string>>
  /** What host names resolve to. */
  readonly hosts: Ref.Ref<ReadonlyMap<string, ReadonlyArray<string>>>
  /** The cluster file as the data dir holds it at start. */
  readonly saved: Ref.Ref<Option.Option<ReadonlyArray<string>>>
  /** Every cluster file written, in order. */
  readonly writes: Ref.Ref<ReadonlyArray<ReadonlyArray<string>>>
}

export const makeFakeCluster = (members: ReadonlyArray<Member>) =>
  Effect.gen(function* () {
    const fake: FakeCluster = {
      members: yield* Ref.make(members),
      answers: yield* Ref.make<ReadonlyMap<string, ReadonlyArray<Member>>>(new Map()),
      clusterIds: yield* Ref.make<ReadonlyMap<string, string>>(new Map()),
      leaderless: yield* Ref.make<ReadonlySet<string>>(new Set<string>()),
      leaderAsked: yield* Ref.make<ReadonlyArray<string>>([]),
      down: yield* Ref.make<ReadonlySet<string> | "all">(new Set<string>()),
      fetched: yield* Ref.make<ReadonlyArray<string>>([]),
      healthy: yield* Ref.make<ReadonlySet<string>>(new Set<string>()),
      probed: yield* Ref.make<ReadonlyArray<string>>([]),
      hosts: yield* Ref.make<ReadonlyMap<string, ReadonlyArray<string>>>(new Map()),
      saved: yield* Ref.make(Option.none<ReadonlyArray<string>>()),
      writes: yield* Ref.make<ReadonlyArray<ReadonlyArray<string>>>([]),
    }
    return fake
  })

export const fetchCount = (fake: FakeCluster) =>
  Effect.map(Ref.get(fake.fetched), (peers) => peers.length)

const fetchLimit = 1_000

export const defaultClusterId = "cdf818194e3a8c32"

const fakeMemberClient = (fake: FakeCluster) =>
  MemberClient.make({
    fetchMembers: (peer) =>
      Effect.gen(function* () {
        const asked = yield* Ref.updateAndGet(fake.fetched, (peers) => [...peers, peer])
        // A member list that refreshes in a tight loop would starve the test; stop it there,
        // so that the test fails on its count instead of hanging.
        if (asked.length > fetchLimit) return yield* Effect.never
        const down = yield* Ref.get(fake.down)
        if (down === "all" || down.has(peer)) {
          return yield* new MemberFetchError({ peer, reason: "ECONNREFUSED" })
        }
        const clusterId = (yield* Ref.get(fake.clusterIds)).get(peer) ?? defaultClusterId
        const scripted = (yield* Ref.get(fake.answers)).get(peer)
        if (scripted !== undefined) return { clusterId, members: scripted }
        const members = yield* Ref.get(fake.members)
        if (!members.some((m) => m.peerURLs.includes(peer))) {
          return yield* new MemberFetchError({ peer, reason: "ECONNREFUSED" })
        }
        return { clusterId, members }
      }),
    leaderOf: (clientUrl) =>
      Effect.gen(function* () {
        yield* Ref.update(fake.leaderAsked, (urls) => [...urls, clientUrl])
        const members = yield* Ref.get(fake.members)
        const serving = members.some((m) => m.clientURLs.includes(clientUrl))
        return serving && !(yield* Ref.get(fake.leaderless)).has(clientUrl)
          ? Option.some(members[0]!.id as string)
          : Option.none()
      }),
    probeHealth: (clientUrl) =>
      Effect.gen(function* () {
        yield* Ref.update(fake.probed, (urls) => [...urls, clientUrl])
        return (yield* Ref.get(fake.healthy)).has(clientUrl)
      }),
    resolve: (host) => Effect.map(Ref.get(fake.hosts), (hosts) => hosts.get(host) ?? []),
  })

const fakeDataDir = (fake: FakeCluster) =>
  DataDir.make({
    dataDir: "test.etcd",
    proxyDir: "test.etcd/proxy",
    clusterFile: "test.etcd/proxy/cluster",
    readCluster: Ref.get(fake.saved),
    writeCluster: (peerUrls) => Ref.update(fake.writes, (writes) => [...writes, peerUrls]),
  })

export interface StartOptions {
  /** The peer URLs the cluster source gives (default: peers of the fake's first members). */
  readonly peers?: ReadonlyArray<string>
  readonly config?: Partial<ProxyConfigShape>
  /** Replaces `Discovery.static(peers)`. */
  readonly discovery?: DiscoveryShape
}

/** The layers below MemberList, all fake but Metrics. */
export const dependencies = (
  fake: FakeCluster,
  peers: ReadonlyArray<string>,
  options: StartOptions,
) =>
  Layer.mergeAll(
    Layer.succeed(MemberClient, fakeMemberClient(fake)),
    Layer.succeed(DataDir, fakeDataDir(fake)),
    options.discovery === undefined
      ? Discovery.static(peers)
      : Layer.succeed(Discovery, options.discovery),
    Metrics.Default,
    Layer.succeed(
      ProxyConfig,
      makeProxyConfig({ _tag: "InitialCluster", members: [] }, options.config),
    ),
  )

const initialPeers = (fake: FakeCluster, options: StartOptions) =>
  options.peers === undefined
    ? Effect.map(Ref.get(fake.members), (members) => members.flatMap((m) => m.peerURLs))
    : Effect.succeed(options.peers)

/** Builds MemberList in the test's scope, so its fibers live as long as the test. */
export const startMemberList = (
  fake: FakeCluster,
  options: StartOptions = {},
): Effect.Effect<MemberList, never, Scope.Scope> =>
  Effect.gen(function* () {
    const peers = yield* initialPeers(fake, options)
    const context = yield* Layer.build(
      MemberList.Default.pipe(Layer.provide(dependencies(fake, peers, options))),
    )
    return Context.get(context, MemberList)
  })

/** Builds MemberList and Shuffler in the test's scope. */
export const startShuffler = (
  fake: FakeCluster,
  options: StartOptions = {},
): Effect.Effect<{ readonly list: MemberList; readonly shuffler: Shuffler }, never, Scope.Scope> =>
  Effect.gen(function* () {
    const peers = yield* initialPeers(fake, options)
    const context = yield* Layer.build(
      Shuffler.Default.pipe(
        Layer.provideMerge(MemberList.Default),
        Layer.provideMerge(dependencies(fake, peers, options)),
      ),
    )
    return { list: Context.get(context, MemberList), shuffler: Context.get(context, Shuffler) }
  })

export interface LogLine {
  readonly level: string
  readonly message: string
  readonly annotations: Readonly<Record<string, unknown>>
}

/**
 * Collects every log line at info and above for the rest of the scope, in a live array:
 * fibers forked later (the member list's own) inherit the logger.
 */
export const captureLogs: Effect.Effect<ReadonlyArray<LogLine>, never, Scope.Scope> = Effect.gen(
  function* () {
    const lines: Array<LogLine> = []
    const logger = Logger.make(({ logLevel, message, annotations }) => {
      const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
      lines.push({
        level: logLevel.label,
        message: text,
        annotations: Object.fromEntries(HashMap.toEntries(annotations)),
      })
    })
    yield* Effect.locallyScopedWith(FiberRef.currentLoggers, HashSet.add(logger))
    return lines
  },
)
