/** How the proxy talks to members outside the request path: `/members`, `/health`, host look-ups. */
import { lookup } from "node:dns/promises"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
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
          const decoded = decodeMembers(body)
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

    /** The addresses a host name resolves to; none when it does not resolve. */
    const resolve = (host: string): Effect.Effect<ReadonlyArray<string>> =>
      Effect.tryPromise(() => lookup(host, { all: true })).pipe(
        Effect.map((addresses) => addresses.map((a) => a.address)),
        Effect.timeout(Duration.millis(Math.max(dialMs, 1_000))),
        Effect.orElseSucceed(() => []),
      )

    return { fetchMembers, probeHealth, resolve } as const
  }),
}) {}
