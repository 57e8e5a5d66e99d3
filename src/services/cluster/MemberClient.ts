/** How the proxy talks to members outside the request path: `/members`, `/health`, host look-ups. */
import { lookup } from "node:dns/promises"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Agent } from "undici"
import { ProxyConfig } from "../../domain/Config.js"
import { decodeMembers, isClusterId, type Member } from "../../domain/Member.js"
import { TlsMaterial, type ClientTls } from "../TlsMaterial.js"

/** A peer did not give a usable member list; `reason` is worded for the log. */
export class MemberFetchError extends Data.TaggedError("MemberFetchError")<{
  readonly peer: string
  readonly reason: string
}> {}

export interface MemberListAnswer {
  readonly clusterId: string
  readonly members: ReadonlyArray<Member>
}

const describe = (error: unknown): string => {
  const e = error as { code?: string; message?: string; cause?: { code?: string } }
  return e.code ?? e.cause?.code ?? e.message ?? String(error)
}

export class MemberClient extends Effect.Service<MemberClient>()("etcd-proxy/MemberClient", {
  scoped: Effect.gen(function* () {
    const config = yield* ProxyConfig
    const tls = yield* TlsMaterial
    const dialMs = Duration.toMillis(config.dialTimeout)
    // Control traffic gets its own small agents, apart from client requests: `/members` on peer
    // URLs with the peer TLS settings, `/health` on client URLs with the client ones (§8.3).
    // A TLS reload replaces both; requests already under way finish on the old ones.
    const agentWith = (tlsOptions: ClientTls) =>
      new Agent({
        connect: { timeout: dialMs, ...tlsOptions },
        connections: 2,
        keepAliveTimeout: 1_000,
      })
    let peerAgent = agentWith(tls.towardsPeers())
    let clientAgent = agentWith(tls.towardsMembers())
    let closed = false
    tls.onReload(() => {
      if (closed) return
      const old = [peerAgent, clientAgent]
      peerAgent = agentWith(tls.towardsPeers())
      clientAgent = agentWith(tls.towardsMembers())
      for (const agent of old) void agent.close().catch(() => undefined)
    })
    yield* Effect.addFinalizer(() =>
      Effect.promise(() => {
        closed = true
        return Promise.all([peerAgent.close(), clientAgent.close()])
      }),
    )
    const answerTimeout = Math.max(dialMs, 1_000) + 2_000
    const leaderTimeout = Math.max(dialMs, 1_000)

    const fetchMembers = (peer: string): Effect.Effect<MemberListAnswer, MemberFetchError> =>
      Effect.tryPromise({
        try: async (signal) => {
          const url = new URL("/members", peer)
          const response = await peerAgent.request({
            origin: url.origin,
            path: url.pathname,
            method: "GET",
            signal,
            headersTimeout: answerTimeout,
            bodyTimeout: answerTimeout,
          })
          const body = await response.body.text()
          return { status: response.statusCode, headers: response.headers, body }
        },
        catch: (error) => new MemberFetchError({ peer, reason: describe(error) }),
      }).pipe(
        Effect.flatMap(({ status, headers, body }) => {
          if (status !== 200) {
            const where =
              headers["location"] === undefined ? "" : ` to ${String(headers["location"])}`
            return new MemberFetchError({ peer, reason: `answered ${status}${where}` })
          }
          const clusterId = headers["x-etcd-cluster-id"]
          if (typeof clusterId !== "string" || !isClusterId(clusterId)) {
            return new MemberFetchError({
              peer,
              reason: `answered without a valid X-Etcd-Cluster-ID header (${String(clusterId)})`,
            })
          }
          // Go writes a nil slice as `null`: a member that has not replayed any member yet.
          const decoded = decodeMembers(body.trim() === "null" ? "[]" : body)
          return decoded._tag === "Left"
            ? new MemberFetchError({ peer, reason: decoded.left })
            : Effect.succeed({ clusterId, members: decoded.right })
        }),
        Effect.withSpan("MemberClient.fetchMembers", { attributes: { peer } }),
      )

    /** True when the member answers `GET /health` at all: reachability is what failure marks. */
    const probeHealth = (clientUrl: string): Effect.Effect<boolean> =>
      Effect.tryPromise(async (signal) => {
        const url = new URL("/health", clientUrl)
        const response = await clientAgent.request({
          origin: url.origin,
          path: url.pathname,
          method: "GET",
          signal,
          headersTimeout: answerTimeout,
          bodyTimeout: answerTimeout,
        })
        await response.body.dump()
        return true
      }).pipe(Effect.orElseSucceed(() => false))

    const getJson = (clientUrl: string, path: string, post: boolean) =>
      Effect.tryPromise(async (signal) => {
        const url = new URL(path, clientUrl)
        const response = await clientAgent.request({
          origin: url.origin,
          path: url.pathname,
          method: post ? "POST" : "GET",
          ...(post ? { body: "{}", headers: { "content-type": "application/json" } } : {}),
          signal,
          headersTimeout: leaderTimeout,
          bodyTimeout: leaderTimeout,
        })
        const text = await response.body.text()
        return response.statusCode === 200 ? (JSON.parse(text) as unknown) : undefined
      }).pipe(Effect.orElseSucceed(() => undefined))

    /**
     * The leader the member at `clientUrl` knows, if any. A member serves its client port only
     * once it has replayed its log and published itself through raft (etcd's client listener
     * waits for the server to be ready), so any answer here comes from a member whose member
     * list is current. The v3 gateway's `maintenance/status` gives raft's current leader
     * (`"0"` when there is none); where it does not answer (auth enabled: Status needs a user),
     * `GET /v2/stats/self` (`--enable-v2`) names the leader that last sent this member entries.
     */
    const leaderOf = (clientUrl: string): Effect.Effect<Option.Option<string>> =>
      Effect.gen(function* () {
        const status = (yield* getJson(clientUrl, "/v3/maintenance/status", true)) as
          { leader?: unknown } | undefined
        if (status !== undefined && status !== null && typeof status === "object") {
          const leader = status.leader
          return typeof leader === "string" && /^[1-9]\d*$/.test(leader)
            ? Option.some(leader)
            : Option.none()
        }
        const self = (yield* getJson(clientUrl, "/v2/stats/self", false)) as
          { leaderInfo?: { leader?: unknown } } | undefined
        const leader = self?.leaderInfo?.leader
        return typeof leader === "string" && /^[0-9a-f]+$/i.test(leader) && !/^0+$/.test(leader)
          ? Option.some(leader)
          : Option.none()
      }).pipe(Effect.withSpan("MemberClient.leaderOf", { attributes: { clientUrl } }))

    /** The addresses a host name resolves to; none when it does not resolve. */
    const resolve = (host: string): Effect.Effect<ReadonlyArray<string>> =>
      Effect.tryPromise(() => lookup(host, { all: true })).pipe(
        Effect.map((addresses) => addresses.map((a) => a.address)),
        Effect.timeout(Duration.millis(Math.max(dialMs, 1_000))),
        Effect.orElseSucceed(() => []),
      )

    return { fetchMembers, probeHealth, leaderOf, resolve } as const
  }),
}) {}
