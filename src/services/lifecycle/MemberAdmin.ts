/** Cluster membership through a member's client URL (SPEC §9.2): v3 JSON gateway, else the v2 members API. */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { Agent } from "undici"
import {
  decodeV2MemberAdd,
  decodeV2MemberList,
  decodeV3MemberAdd,
  decodeV3MemberList,
  v3ErrorReason,
  type ClusterMember,
  type ClusterView,
} from "../../domain/Lifecycle.js"

/** The cluster could not be asked, or said no; `reason` is worded for the operator. */
export class MembershipError extends Data.TaggedError("MembershipError")<{
  readonly endpoint: string
  readonly reason: string
  /** True when no member could be reached at all (nothing happened). */
  readonly unreachable: boolean
}> {
  override get message(): string {
    return this.endpoint === "" ? this.reason : `${this.endpoint}: ${this.reason}`
  }
}

interface Answer {
  readonly status: number
  readonly header: (name: string) => string | undefined
  readonly body: string
}

const describe = (error: unknown): string => {
  const e = error as { code?: string; message?: string; cause?: { code?: string } }
  return e.cause?.code ?? e.code ?? e.message ?? String(error)
}

/** Failures that prove the request never reached a member: the next endpoint may be tried. */
const notConnected = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "UND_ERR_CONNECT_TIMEOUT",
])

export class MemberAdmin extends Effect.Service<MemberAdmin>()("etcd-proxy/MemberAdmin", {
  scoped: Effect.gen(function* () {
    const agent = yield* Effect.acquireRelease(
      Effect.sync(() => new Agent({ connect: { timeout: 3_000 }, connections: 2 })),
      (agent) => Effect.promise(() => agent.close()),
    )

    const call = (
      endpoint: string,
      method: "GET" | "POST",
      path: string,
      body?: unknown,
    ): Effect.Effect<Answer, MembershipError> =>
      Effect.tryPromise({
        try: async (signal) => {
          const url = new URL(path, endpoint)
          const response = await agent.request({
            origin: url.origin,
            path: url.pathname,
            method,
            signal,
            headersTimeout: 10_000,
            bodyTimeout: 10_000,
            ...(body === undefined
              ? {}
              : {
                  body: JSON.stringify(body),
                  headers: { "content-type": "application/json" },
                }),
          })
          const text = await response.body.text()
          const headers = response.headers
          return {
            status: response.statusCode,
            header: (name: string) => {
              const value = headers[name.toLowerCase()]
              return Array.isArray(value) ? value[0] : value
            },
            body: text,
          }
        },
        catch: (error) =>
          new MembershipError({
            endpoint,
            reason: describe(error),
            unreachable: notConnected.has(describe(error)),
          }),
      })

    const refused = (endpoint: string, answer: Answer, what: string) =>
      new MembershipError({
        endpoint,
        reason: `${what} answered ${answer.status}: ${v3ErrorReason(answer.body)}`,
        unreachable: false,
      })

    const badAnswer = (endpoint: string, what: string) => (reason: string) =>
      new MembershipError({ endpoint, reason: `${what}: ${reason}`, unreachable: false })

    /** The member list from one endpoint. */
    const listAt = (endpoint: string): Effect.Effect<ClusterView, MembershipError> =>
      Effect.gen(function* () {
        const v3 = yield* call(endpoint, "POST", "/v3/cluster/member/list", {})
        if (v3.status === 200) {
          return yield* Either.mapLeft(
            decodeV3MemberList(v3.body),
            badAnswer(endpoint, "/v3/cluster/member/list"),
          )
        }
        if (v3.status !== 404) return yield* refused(endpoint, v3, "/v3/cluster/member/list")
        const v2 = yield* call(endpoint, "GET", "/v2/members")
        if (v2.status !== 200) return yield* refused(endpoint, v2, "/v2/members")
        return yield* Either.mapLeft(
          decodeV2MemberList(v2.body, v2.header("x-etcd-cluster-id")),
          badAnswer(endpoint, "/v2/members"),
        )
      })

    /** Adds a member with these peer URLs; returns it and the member list after the change. */
    const addAt = (
      endpoint: string,
      peerUrls: ReadonlyArray<string>,
    ): Effect.Effect<
      { readonly added: ClusterMember; readonly view: ClusterView },
      MembershipError
    > =>
      Effect.gen(function* () {
        const v3 = yield* call(endpoint, "POST", "/v3/cluster/member/add", { peerURLs: peerUrls })
        if (v3.status === 200) {
          const answer = yield* Either.mapLeft(
            decodeV3MemberAdd(v3.body),
            badAnswer(endpoint, "/v3/cluster/member/add"),
          )
          const view = answer.view ?? (yield* listAt(endpoint))
          return { added: answer.added, view }
        }
        if (v3.status !== 404) return yield* refused(endpoint, v3, "/v3/cluster/member/add")
        const v2 = yield* call(endpoint, "POST", "/v2/members", { peerURLs: peerUrls })
        if (v2.status !== 201 && v2.status !== 200) {
          return yield* refused(endpoint, v2, "/v2/members")
        }
        const added = yield* Either.mapLeft(
          decodeV2MemberAdd(v2.body),
          badAnswer(endpoint, "/v2/members"),
        )
        return { added, view: yield* listAt(endpoint) }
      })

    /**
     * Tries each endpoint in turn until one answers; an endpoint that answers with a refusal
     * ends the search (another member would say the same).
     */
    const firstAnswering = <A>(
      endpoints: ReadonlyArray<string>,
      f: (endpoint: string) => Effect.Effect<A, MembershipError>,
    ): Effect.Effect<{ readonly endpoint: string; readonly value: A }, MembershipError> =>
      Effect.gen(function* () {
        const reasons: Array<string> = []
        for (const endpoint of endpoints) {
          const result = yield* Effect.either(f(endpoint))
          if (Either.isRight(result)) return { endpoint, value: result.right }
          if (!result.left.unreachable) return yield* result.left
          reasons.push(result.left.message)
        }
        return yield* new MembershipError({
          endpoint: "",
          reason: `no member answered (${reasons.join("; ")})`,
          unreachable: true,
        })
      })

    return {
      list: (endpoints: ReadonlyArray<string>) => firstAnswering(endpoints, listAt),
      add: (endpoints: ReadonlyArray<string>, peerUrls: ReadonlyArray<string>) =>
        firstAnswering(endpoints, (endpoint) => addAt(endpoint, peerUrls)),
    } as const
  }),
}) {}
