/** A cluster member as a peer's `GET /members` reports it, and the saved cluster file's format. */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"

/** Member ids are uint64: carried as decimal strings, never as JS numbers. */
export const MemberId = Schema.String.pipe(Schema.pattern(/^\d+$/), Schema.brand("MemberId"))
export type MemberId = typeof MemberId.Type

export class Member extends Schema.Class<Member>("Member")({
  id: MemberId,
  name: Schema.optionalWith(Schema.String, { default: () => "" }),
  peerURLs: Schema.Array(Schema.String),
  clientURLs: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
  isLearner: Schema.optionalWith(Schema.Boolean, { default: () => false }),
}) {}

export const Members = Schema.Array(Member)

/**
 * The ids in etcd's JSON exceed 2^53; quote them before `JSON.parse` so that no digit is lost.
 * An unescaped `"id":` preceded by `{` or `,` can only be a key: inside JSON strings every quote is escaped.
 */
const quoteIds = (json: string): string => json.replace(/([{,]\s*"id"\s*:\s*)(\d+)/g, '$1"$2"')

/** Decodes a `/members` response body; the error says what was wrong with it. */
export const decodeMembers = (body: string): Either.Either<ReadonlyArray<Member>, string> => {
  let raw: unknown
  try {
    raw = JSON.parse(quoteIds(body))
  } catch (error) {
    return Either.left(`member list is not JSON: ${(error as Error).message}`)
  }
  return Schema.decodeUnknownEither(Members)(raw).pipe(
    Either.mapLeft(
      (error) =>
        `member list has an unexpected shape: ${ParseResult.TreeFormatter.formatErrorSync(error)}`,
    ),
  )
}

/** `X-Etcd-Cluster-ID` is a non-zero hex uint64. */
export const isClusterId = (value: string | undefined): value is string =>
  value !== undefined && /^[0-9a-f]{1,16}$/i.test(value) && !/^0+$/.test(value)

/** `<data-dir>/proxy/cluster`: etcd's own format, `{"PeerURLs":[...]}` compact, sorted, no newline. */
export const ClusterFile = Schema.Struct({ PeerURLs: Schema.Array(Schema.String) })

export const encodeClusterFile = (peerUrls: ReadonlyArray<string>): string =>
  JSON.stringify({ PeerURLs: [...peerUrls].sort() })

export const decodeClusterFile = (text: string): Either.Either<ReadonlyArray<string>, string> => {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (error) {
    return Either.left(`not JSON: ${(error as Error).message}`)
  }
  return Schema.decodeUnknownEither(ClusterFile)(raw).pipe(
    Either.map((file) => file.PeerURLs),
    Either.mapLeft((error) => ParseResult.TreeFormatter.formatErrorSync(error)),
  )
}
