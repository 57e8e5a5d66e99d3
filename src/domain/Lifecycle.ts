/** Moving a machine between proxy and member (SPEC §9, §10): member answers, etcdctl's output, errors. */
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"

/** A `promote` step failed; the message says what happened and what is left to do. Exit 1. */
export class PromoteFailed extends Data.TaggedError("PromoteFailed")<{
  readonly message: string
}> {}

/** `join` cannot go on: cluster full with `--discovery-fallback exit`, or etcd failed. Exit 1. */
export class JoinFailed extends Data.TaggedError("JoinFailed")<{
  readonly message: string
  /** etcd's own exit code when etcd ended the run. */
  readonly exitCode?: number
}> {}

/** A cluster member as both APIs describe it, ids as bigints (they exceed 2^53). */
export interface ClusterMember {
  readonly id: bigint
  readonly name: string
  readonly peerURLs: ReadonlyArray<string>
  readonly clientURLs: ReadonlyArray<string>
}

export interface ClusterView {
  readonly clusterId: bigint
  readonly members: ReadonlyArray<ClusterMember>
}

// v3 JSON gateway: uint64 fields are decimal strings, empty fields are left out.
const V3Member = Schema.Struct({
  ID: Schema.String,
  name: Schema.optional(Schema.String),
  peerURLs: Schema.optional(Schema.Array(Schema.String)),
  clientURLs: Schema.optional(Schema.Array(Schema.String)),
})

const V3MemberList = Schema.Struct({
  header: Schema.Struct({ cluster_id: Schema.String }),
  members: Schema.optional(Schema.Array(V3Member)),
})

const V3MemberAdd = Schema.Struct({
  header: Schema.Struct({ cluster_id: Schema.String }),
  member: V3Member,
  members: Schema.optional(Schema.Array(V3Member)),
})

/** The gateway's error body: `{"error":"etcdserver: unhealthy cluster","message":...,"code":14}`. */
const V3Error = Schema.Struct({
  error: Schema.optional(Schema.String),
  message: Schema.optional(Schema.String),
})

// v2 members API: ids are hex strings.
const V2Member = Schema.Struct({
  id: Schema.String,
  name: Schema.optional(Schema.String),
  peerURLs: Schema.optional(Schema.Array(Schema.String)),
  clientURLs: Schema.optional(Schema.Array(Schema.String)),
})

const V2MemberList = Schema.Struct({ members: Schema.Array(V2Member) })

const parseJson = (body: string): Either.Either<unknown, string> => {
  try {
    return Either.right(JSON.parse(body))
  } catch {
    return Either.left(`not JSON: ${JSON.stringify(body.trim().slice(0, 120))}`)
  }
}

const decode =
  <A, I>(schema: Schema.Schema<A, I>) =>
  (body: string): Either.Either<A, string> =>
    Either.flatMap(parseJson(body), (raw) =>
      Schema.decodeUnknownEither(schema)(raw).pipe(
        Either.mapLeft(
          (error) =>
            `unexpected answer: ${ParseResult.TreeFormatter.formatErrorSync(error).split("\n")[0]}`,
        ),
      ),
    )

const uint64 = (text: string, radix: 10 | 16): bigint | undefined => {
  const pattern = radix === 10 ? /^\d{1,20}$/ : /^[0-9a-f]{1,16}$/i
  if (!pattern.test(text)) return undefined
  return radix === 10 ? BigInt(text) : BigInt(`0x${text}`)
}

const v3Member = (m: typeof V3Member.Type): Either.Either<ClusterMember, string> => {
  const id = uint64(m.ID, 10)
  return id === undefined
    ? Either.left(`member id ${JSON.stringify(m.ID)} is not a uint64`)
    : Either.right({
        id,
        name: m.name ?? "",
        peerURLs: m.peerURLs ?? [],
        clientURLs: m.clientURLs ?? [],
      })
}

const v3Members = (members: ReadonlyArray<typeof V3Member.Type> | undefined) =>
  Either.all((members ?? []).map(v3Member))

const clusterIdOf = (text: string, radix: 10 | 16): Either.Either<bigint, string> => {
  const id = uint64(text, radix)
  return id === undefined
    ? Either.left(`cluster id ${JSON.stringify(text)} is not a uint64`)
    : Either.right(id)
}

export const decodeV3MemberList = (body: string): Either.Either<ClusterView, string> =>
  Either.gen(function* () {
    const answer = yield* decode(V3MemberList)(body)
    return {
      clusterId: yield* clusterIdOf(answer.header.cluster_id, 10),
      members: yield* v3Members(answer.members),
    }
  })

export const decodeV3MemberAdd = (
  body: string,
): Either.Either<
  { readonly added: ClusterMember; readonly view: ClusterView | undefined },
  string
> =>
  Either.gen(function* () {
    const answer = yield* decode(V3MemberAdd)(body)
    const clusterId = yield* clusterIdOf(answer.header.cluster_id, 10)
    return {
      added: yield* v3Member(answer.member),
      view:
        answer.members === undefined
          ? undefined
          : { clusterId, members: yield* v3Members(answer.members) },
    }
  })

/** The reason in a gateway error body, or the body itself. */
export const v3ErrorReason = (body: string): string =>
  Either.match(decode(V3Error)(body), {
    onLeft: () => body.trim().slice(0, 200),
    onRight: (answer) => answer.error ?? answer.message ?? body.trim().slice(0, 200),
  })

const v2Member = (m: typeof V2Member.Type): Either.Either<ClusterMember, string> => {
  const id = uint64(m.id, 16)
  return id === undefined
    ? Either.left(`member id ${JSON.stringify(m.id)} is not a hex uint64`)
    : Either.right({
        id,
        name: m.name ?? "",
        peerURLs: m.peerURLs ?? [],
        clientURLs: m.clientURLs ?? [],
      })
}

export const decodeV2MemberList = (
  body: string,
  clusterIdHeader: string | undefined,
): Either.Either<ClusterView, string> =>
  Either.gen(function* () {
    const answer = yield* decode(V2MemberList)(body)
    return {
      clusterId: yield* clusterIdOf(clusterIdHeader ?? "", 16),
      members: yield* Either.all(answer.members.map(v2Member)),
    }
  })

export const decodeV2MemberAdd = (body: string): Either.Either<ClusterMember, string> =>
  Either.flatMap(decode(V2Member)(body), v2Member)

// ---------------------------------------------------------------------------
// What `etcdctl member add` prints (etcdctl 3.4, API v3), byte for byte.

/** Go's `%16x`: lower-case hex, padded with spaces to 16 columns. */
export const hex16 = (id: bigint): string => id.toString(16).padStart(16, " ")

const goQuote = (text: string): string => JSON.stringify(text)

const normalUrl = (url: string): string => url.replace(/\/+$/, "")

/** The member that owns any of these peer URLs, if one does. */
export const memberWithPeerUrls = (
  view: ClusterView,
  peerUrls: ReadonlyArray<string>,
): ClusterMember | undefined => {
  const wanted = new Set(peerUrls.map(normalUrl))
  return view.members.find((member) => member.peerURLs.some((url) => wanted.has(normalUrl(url))))
}

/** `ETCD_INITIAL_CLUSTER`: every member's `name=peerURL`, the new member under its new name. */
export const initialCluster = (view: ClusterView, newId: bigint, newName: string): string =>
  view.members
    .flatMap((member) =>
      member.peerURLs.map((url) => `${member.id === newId ? newName : member.name}=${url}`),
    )
    .join(",")

export interface MemberEnvironment {
  readonly ETCD_NAME: string
  readonly ETCD_INITIAL_CLUSTER: string
  readonly ETCD_INITIAL_CLUSTER_STATE: "existing"
}

export const memberEnvironment = (
  view: ClusterView,
  newId: bigint,
  newName: string,
): MemberEnvironment => ({
  ETCD_NAME: newName,
  ETCD_INITIAL_CLUSTER: initialCluster(view, newId, newName),
  ETCD_INITIAL_CLUSTER_STATE: "existing",
})

/** The lines `etcdctl member add` prints after the member was added. */
export const memberAddOutput = (
  view: ClusterView,
  newId: bigint,
  newName: string,
  peerUrls: ReadonlyArray<string>,
): string => {
  const env = memberEnvironment(view, newId, newName)
  return [
    `Member ${hex16(newId)} added to cluster ${hex16(view.clusterId)}`,
    "",
    `ETCD_NAME=${goQuote(env.ETCD_NAME)}`,
    `ETCD_INITIAL_CLUSTER=${goQuote(env.ETCD_INITIAL_CLUSTER)}`,
    `ETCD_INITIAL_ADVERTISE_PEER_URLS=${goQuote(peerUrls.join(","))}`,
    `ETCD_INITIAL_CLUSTER_STATE=${goQuote(env.ETCD_INITIAL_CLUSTER_STATE)}`,
  ].join("\n")
}

/** A POSIX shell word: left bare when safe, else single-quoted. */
export const shellWord = (word: string): string =>
  /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`
