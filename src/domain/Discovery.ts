/** The v2 discovery protocol's data (SPEC §6): answers, member registrations, backoff, and typed errors. */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"

/** Where discovery stands; read synchronously by every request while it is pending. */
export type DiscoveryStatus =
  | { readonly _tag: "Complete" }
  | { readonly _tag: "Pending"; readonly registered: number; readonly size: number | null }

export const complete: DiscoveryStatus = { _tag: "Complete" }

export interface DiscoveryShape {
  /** Names the source in logs, e.g. `--initial-cluster`. */
  readonly source: string
  /** Read synchronously by the hot path: while pending, requests get 503 `DiscoveryPending`. */
  readonly status: () => DiscoveryStatus
  /** The peer URLs; waits until discovery is complete. */
  readonly peerUrls: Effect.Effect<ReadonlyArray<string>>
}

// ---------------------------------------------------------------------------
// Errors, worded for an operator. A discovery URL error names the token; an SRV error the records.

/** `<token>/_config/size` does not exist: the token was never created (or was deleted). */
export class DiscoveryTokenMissing extends Schema.TaggedError<DiscoveryTokenMissing>()(
  "DiscoveryTokenMissing",
  { url: Schema.String },
) {
  override get message(): string {
    return `discovery token ${this.url} does not exist (no ${this.url}/_config/size): it was never created or has been deleted; create one with "curl '<discovery service>/new?size=N'" and pass the URL it prints to --discovery`
  }
}

/** `<token>/_config/size` holds something other than a positive whole number. */
export class DiscoveryBadSize extends Schema.TaggedError<DiscoveryBadSize>()("DiscoveryBadSize", {
  url: Schema.String,
  value: Schema.String,
}) {
  override get message(): string {
    return `discovery token ${this.url} has a bad cluster size ${JSON.stringify(this.value)} in _config/size (expected a positive whole number); create a new token`
  }
}

/** The discovery service could not be reached or failed on its side; retried with backoff. */
export class DiscoveryUnreachable extends Schema.TaggedError<DiscoveryUnreachable>()(
  "DiscoveryUnreachable",
  { url: Schema.String, reason: Schema.String },
) {
  override get message(): string {
    return `discovery service for ${this.url} is unreachable: ${this.reason}`
  }
}

/** The service answered, but not in the v2 discovery protocol: most often a wrong `--discovery` URL. */
export class DiscoveryBadAnswer extends Schema.TaggedError<DiscoveryBadAnswer>()(
  "DiscoveryBadAnswer",
  { url: Schema.String, reason: Schema.String },
) {
  override get message(): string {
    return `${this.url} does not answer as an etcd v2 discovery service: ${this.reason}; check the --discovery URL`
  }
}

/** A registered member's value is not `name=peerURL[,...]`. */
export class DiscoveryBadMember extends Schema.TaggedError<DiscoveryBadMember>()(
  "DiscoveryBadMember",
  { url: Schema.String, key: Schema.String, value: Schema.String, reason: Schema.String },
) {
  override get message(): string {
    return `discovery token ${this.url} holds a malformed member registration ${this.key} = ${JSON.stringify(this.value)} (${this.reason}); expected name=peerURL[,name=peerURL...]: remove that key or create a new token`
  }
}

/** Neither SRV service name gave a peer URL. */
export class SrvDiscoveryFailed extends Schema.TaggedError<SrvDiscoveryFailed>()(
  "SrvDiscoveryFailed",
  {
    domain: Schema.String,
    lookups: Schema.Array(Schema.Struct({ name: Schema.String, reason: Schema.String })),
  },
) {
  override get message(): string {
    return `DNS SRV discovery for ${this.domain} found no members: ${this.lookups.map((l) => `${l.name}: ${l.reason}`).join("; ")}; publish SRV records for the members' peer ports, or use --initial-cluster`
  }
}

/** Every way a discovery URL can fail. Only `DiscoveryUnreachable` is worth retrying as is. */
export type DiscoveryUrlError =
  | DiscoveryTokenMissing
  | DiscoveryBadSize
  | DiscoveryUnreachable
  | DiscoveryBadAnswer
  | DiscoveryBadMember

export type DiscoveryError = DiscoveryUrlError | SrvDiscoveryFailed

/** A DNS look-up that found nothing or failed; internal to the SRV resolver. */
export class SrvLookupError extends Data.TaggedError("SrvLookupError")<{
  readonly name: string
  readonly reason: string
}> {
  override get message(): string {
    return `DNS look-up of ${this.name} failed: ${this.reason}`
  }
}

// ---------------------------------------------------------------------------
// The v2 keys API answers the discovery service relays.

interface KeysNodeEncoded {
  readonly key: string
  readonly value?: string | undefined
  readonly dir?: boolean | undefined
  readonly nodes?: ReadonlyArray<KeysNodeEncoded> | undefined
  readonly createdIndex?: number | undefined
  readonly modifiedIndex?: number | undefined
}

export const KeysNode: Schema.Schema<KeysNodeEncoded> = Schema.Struct({
  key: Schema.String,
  value: Schema.optional(Schema.String),
  dir: Schema.optional(Schema.Boolean),
  nodes: Schema.optional(Schema.Array(Schema.suspend(() => KeysNode))),
  createdIndex: Schema.optional(Schema.Number),
  modifiedIndex: Schema.optional(Schema.Number),
})
export type KeysNode = typeof KeysNode.Type

export const KeysAnswer = Schema.Struct({
  action: Schema.optional(Schema.String),
  node: KeysNode,
})

/** An etcd v2 error body, e.g. `{"errorCode":100,"message":"Key not found"}`. */
export const KeysErrorAnswer = Schema.Struct({
  errorCode: Schema.Number,
  message: Schema.optional(Schema.String),
})

const parseJson = (body: string): Either.Either<unknown, string> => {
  try {
    return Either.right(JSON.parse(body))
  } catch {
    const shown = body.trim().slice(0, 80)
    return Either.left(`the answer is not JSON (${JSON.stringify(shown)})`)
  }
}

export const decodeKeysAnswer = (body: string): Either.Either<typeof KeysAnswer.Type, string> =>
  Either.flatMap(parseJson(body), (raw) =>
    Schema.decodeUnknownEither(KeysAnswer)(raw).pipe(
      Either.mapLeft(
        (error) =>
          `unexpected answer shape: ${ParseResult.TreeFormatter.formatErrorSync(error).split("\n")[0]}`,
      ),
    ),
  )

/** The v2 error code of an error body, if it is one (100: key not found, 401: index cleared). */
export const keysErrorCode = (body: string): number | undefined =>
  Either.match(Either.flatMap(parseJson(body), Schema.decodeUnknownEither(KeysErrorAnswer)), {
    onLeft: () => undefined,
    onRight: (answer) => answer.errorCode,
  })

/** etcd reads the size with `strconv.ParseUint`; zero makes no cluster either. */
export const parseSize = (value: string | undefined): number | undefined =>
  value !== undefined &&
  /^\d+$/.test(value) &&
  Number.isSafeInteger(Number(value)) &&
  Number(value) > 0
    ? Number(value)
    : undefined

export interface Registration {
  readonly key: string
  readonly value: string
  readonly createdIndex: number
}

const baseName = (key: string): string => key.slice(key.lastIndexOf("/") + 1)

/** The registered members of a token directory, oldest first (creation index, as etcd sorts). */
export const registrations = (dir: KeysNode): ReadonlyArray<Registration> =>
  (dir.nodes ?? [])
    .filter((node) => baseName(node.key) !== "_config")
    .map((node) => ({
      key: node.key,
      value: node.value ?? "",
      createdIndex: node.createdIndex ?? 0,
    }))
    .sort((a, b) => a.createdIndex - b.createdIndex)

/**
 * A registration's value: `name=peerURL[,name=peerURL...]` as etcd registers itself (one entry per
 * peer URL), or `name=peerURL,peerURL` as the SPEC writes it. Returns the peer URLs.
 */
export const parseRegistration = (value: string): Either.Either<ReadonlyArray<string>, string> => {
  const items = value
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "")
  if (items.length === 0) return Either.left("empty value")
  if (!items[0]!.includes("=")) return Either.left("no member name before the first peer URL")
  const urls: Array<string> = []
  for (const item of items) {
    const eq = item.indexOf("=")
    if (eq === 0) return Either.left(`empty member name in ${JSON.stringify(item)}`)
    const raw = eq === -1 ? item : item.slice(eq + 1)
    if (!URL.canParse(raw)) return Either.left(`${JSON.stringify(raw)} is not a URL`)
    const url = new URL(raw)
    if ((url.protocol !== "http:" && url.protocol !== "https:") || url.host === "") {
      return Either.left(`${JSON.stringify(raw)} is not an http or https peer URL`)
    }
    urls.push(`${url.protocol}//${url.host}`)
  }
  return Either.right(urls)
}

// ---------------------------------------------------------------------------
// Timing.

/** etcd's discovery backoff doubles per retry and stops growing at 256 s (2^8). */
export const maxBackoff = Duration.seconds(256)

/** The wait before retry number `retry` (0-based): 1 s, 2 s, 4 s, ... 256 s, 256 s, ... */
export const backoffDelay = (retry: number): Duration.Duration =>
  Duration.seconds(2 ** Math.min(Math.max(retry, 0), 8))

/**
 * The retry schedule for an unreachable discovery service: waits 1 s, 2 s, 4 s, ... 256 s, then
 * 256 s for ever; its output is the wait, for the log.
 */
export const discoveryBackoff: Schedule.Schedule<Duration.Duration> = Schedule.exponential(
  Duration.seconds(1),
).pipe(
  Schedule.map((delay) => Duration.min(delay, maxBackoff)),
  Schedule.modifyDelay((capped) => capped),
)

/** How long one plain request to the discovery service may take (etcd's client default). */
export const requestTimeout = Duration.seconds(5)

/** A watch with no event for this long is re-established (after a fresh listing). */
export const watchTimeout = Duration.minutes(5)
