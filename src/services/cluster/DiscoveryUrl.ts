/** The v2 discovery protocol as a reader (SPEC §6.1–6.3): the proxy waits for the token, never registers. */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import type * as Scope from "effect/Scope"
import {
  backoffDelay,
  decodeKeysAnswer,
  discoveryBackoff,
  DiscoveryBadAnswer,
  DiscoveryBadMember,
  DiscoveryBadSize,
  DiscoveryTokenMissing,
  DiscoveryUnreachable,
  keysErrorCode,
  parseRegistration,
  parseSize,
  registrations,
  requestTimeout,
  watchTimeout,
  type DiscoveryShape,
  type DiscoveryStatus,
  type DiscoveryUrlError,
  type Registration,
} from "../../domain/Discovery.js"
import { DiscoveryHttp, type DiscoveryAnswer } from "./DiscoveryHttp.js"

/** The token URL as etcd uses it: origin and path; the path is the key prefix. */
export const tokenUrl = (url: URL): string => `${url.origin}${url.pathname.replace(/\/+$/, "")}`

const keyUrl = (url: URL, suffix: string, query = ""): URL =>
  new URL(`${tokenUrl(url)}${suffix}${query}`)

export interface TokenListing {
  readonly registered: ReadonlyArray<Registration>
  /** `X-Etcd-Index` of the listing: a watch from the next index misses nothing. */
  readonly index: number
}

/** One request, bounded in time; a connection failure names the token, not the request URL. */
const request = (url: URL, token: string) =>
  Effect.flatMap(DiscoveryHttp, (http) => http.get(url)).pipe(
    Effect.timeoutFail({
      duration: requestTimeout,
      onTimeout: () =>
        new DiscoveryUnreachable({
          url: token,
          reason: `no answer within ${Duration.format(requestTimeout)}`,
        }),
    }),
    Effect.mapError((error) => new DiscoveryUnreachable({ url: token, reason: error.reason })),
  )

/** A 5xx is the service's own trouble (retried); anything else unexpected is a wrong URL. */
const unexpected = (
  token: string,
  what: string,
  answer: DiscoveryAnswer,
): DiscoveryUnreachable | DiscoveryBadAnswer =>
  answer.status >= 500
    ? new DiscoveryUnreachable({ url: token, reason: `answered ${answer.status} for ${what}` })
    : new DiscoveryBadAnswer({
        url: token,
        reason: `answered ${answer.status} for ${what}: ${answer.body.trim().slice(0, 120)}`,
      })

/** `GET <token>/_config/size`. */
export const readSize = (url: URL): Effect.Effect<number, DiscoveryUrlError, DiscoveryHttp> => {
  const token = tokenUrl(url)
  return Effect.gen(function* () {
    const answer = yield* request(keyUrl(url, "/_config/size"), token)
    if (answer.status === 404) return yield* new DiscoveryTokenMissing({ url: token })
    if (answer.status !== 200) return yield* unexpected(token, "_config/size", answer)
    const decoded = decodeKeysAnswer(answer.body)
    if (Either.isLeft(decoded)) {
      return yield* new DiscoveryBadAnswer({ url: token, reason: decoded.left })
    }
    const size = parseSize(decoded.right.node.value)
    if (size === undefined) {
      return yield* new DiscoveryBadSize({ url: token, value: decoded.right.node.value ?? "" })
    }
    return size
  })
}

/** `GET <token>`: the registered members, oldest first, and the index to watch from. */
export const readRegistrations = (
  url: URL,
): Effect.Effect<TokenListing, DiscoveryUrlError, DiscoveryHttp> => {
  const token = tokenUrl(url)
  return Effect.gen(function* () {
    const answer = yield* request(keyUrl(url, ""), token)
    if (answer.status === 404) return yield* new DiscoveryTokenMissing({ url: token })
    if (answer.status !== 200) return yield* unexpected(token, "the token directory", answer)
    const decoded = decodeKeysAnswer(answer.body)
    if (Either.isLeft(decoded)) {
      return yield* new DiscoveryBadAnswer({ url: token, reason: decoded.left })
    }
    const dir = decoded.right.node
    const header = Number(answer.header("x-etcd-index"))
    const index = Number.isSafeInteger(header)
      ? header
      : Math.max(dir.modifiedIndex ?? 0, ...(dir.nodes ?? []).map((n) => n.modifiedIndex ?? 0))
    return { registered: registrations(dir), index }
  })
}

/**
 * Waits until something under the token changes after `index`. An empty 200 (the service ended the
 * long poll) means wait again; a watch that outlives `watchTimeout`, or an index etcd has already
 * forgotten (error 401), ends the wait so that the caller lists afresh.
 */
export const waitForChange = (
  url: URL,
  index: number,
): Effect.Effect<void, DiscoveryUrlError, DiscoveryHttp> => {
  const token = tokenUrl(url)
  const watch = keyUrl(url, "", `?wait=true&recursive=true&waitIndex=${index + 1}`)
  return Effect.gen(function* () {
    while (true) {
      const answer = yield* Effect.flatMap(DiscoveryHttp, (http) => http.get(watch)).pipe(
        Effect.mapError((error) => new DiscoveryUnreachable({ url: token, reason: error.reason })),
        Effect.timeoutOption(watchTimeout),
      )
      if (Option.isNone(answer)) return
      const { status, body } = answer.value
      if (status === 200 && body.trim() === "") continue
      if (status === 200) return
      if (keysErrorCode(body) === 401) return
      return yield* unexpected(token, "a watch", answer.value)
    }
  })
}

const isUnreachable = (error: unknown): error is DiscoveryUnreachable =>
  (error as { _tag?: string } | undefined)?._tag === "DiscoveryUnreachable"

/** The peer URLs of the first `size` registrations; a malformed one is an error, never skipped. */
export const peerUrlsOf = (
  url: URL,
  members: ReadonlyArray<Registration>,
): Either.Either<ReadonlyArray<string>, DiscoveryBadMember> => {
  const urls = new Set<string>()
  for (const member of members) {
    const parsed = parseRegistration(member.value)
    if (Either.isLeft(parsed)) {
      return Either.left(
        new DiscoveryBadMember({
          url: tokenUrl(url),
          key: member.key,
          value: member.value,
          reason: parsed.left,
        }),
      )
    }
    for (const peer of parsed.right) urls.add(peer)
  }
  return Either.right([...urls].sort())
}

/**
 * Retries a step while the service is unreachable, with etcd's backoff (1 s doubling to 256 s);
 * each retry is logged with its reason and wait. A fresh step starts the backoff afresh.
 */
export const retryingUnreachable = <A, E, R>(
  step: Effect.Effect<A, E | DiscoveryUnreachable, R>,
  onRetry: Effect.Effect<void> = Effect.void,
): Effect.Effect<A, E | DiscoveryUnreachable, R> =>
  Effect.retry(
    step,
    discoveryBackoff.pipe(
      Schedule.intersect(Schedule.identity<E | DiscoveryUnreachable>()),
      Schedule.whileInput((error: E | DiscoveryUnreachable) => isUnreachable(error)),
      Schedule.onDecision(([delay, error], decision) =>
        ScheduleDecision.isContinue(decision) && isUnreachable(error)
          ? Effect.logWarning("discovery service unreachable; retrying").pipe(
              Effect.annotateLogs({
                discovery: error.url,
                error: error._tag,
                reason: error.reason,
                backoff: Duration.format(delay),
              }),
              Effect.zipRight(onRetry),
            )
          : Effect.void,
      ),
    ),
  )

/** The token's size and how many members registered so far (for `join`'s check before it starts etcd). */
export const checkToken = (
  url: URL,
): Effect.Effect<
  { readonly size: number; readonly registered: number },
  DiscoveryUrlError,
  DiscoveryHttp
> =>
  Effect.gen(function* () {
    const size = yield* retryingUnreachable(readSize(url))
    const listing = yield* retryingUnreachable(readRegistrations(url))
    return { size, registered: listing.registered.length }
  })

/**
 * The discovery URL implementation of the `Discovery` port. It listens at once (SPEC §6.2): the
 * layer is ready as soon as the first listing shows the token still filling up, or the service
 * turns out unreachable; until the cluster is complete the status is `Pending`. An error found
 * before that (token missing, bad size, malformed member, not a discovery service) fails start-up;
 * the same errors found later are logged and retried with backoff, as a running proxy should.
 */
export const makeUrlDiscovery = (
  url: URL,
): Effect.Effect<DiscoveryShape, DiscoveryUrlError, DiscoveryHttp | Scope.Scope> =>
  Effect.gen(function* () {
    const token = tokenUrl(url)
    let status: DiscoveryStatus = { _tag: "Pending", registered: 0, size: null }
    const peers = yield* Deferred.make<ReadonlyArray<string>>()
    const settled = yield* Deferred.make<void>()
    const settle = Deferred.succeed(settled, undefined).pipe(Effect.asVoid)

    const report = (registered: number, size: number) =>
      Effect.suspend(() => {
        if (status._tag === "Pending" && status.registered === registered && status.size === size) {
          return Effect.void
        }
        status = { _tag: "Pending", registered, size }
        return Effect.logInfo(`discovery: ${registered} of ${size} members registered`).pipe(
          Effect.annotateLogs({ discovery: token, registered, size }),
        )
      })

    const run = Effect.gen(function* () {
      const size = yield* retryingUnreachable(readSize(url), settle)
      while (true) {
        const listing = yield* retryingUnreachable(readRegistrations(url), settle)
        const first = listing.registered.slice(0, size)
        const found = peerUrlsOf(url, first)
        if (Either.isLeft(found)) return yield* found.left
        yield* report(first.length, size)
        if (first.length >= size) return found.right
        yield* settle
        yield* retryingUnreachable(waitForChange(url, listing.index), settle)
      }
    })

    const driver = Effect.gen(function* () {
      for (let round = 0; ; round++) {
        const result = yield* Effect.either(run)
        if (Either.isRight(result)) {
          status = { _tag: "Complete" }
          yield* Effect.logInfo("discovery complete").pipe(
            Effect.annotateLogs({ discovery: token, peers: result.right.join(",") }),
          )
          yield* Deferred.succeed(peers, result.right)
          return
        }
        if (!(yield* Deferred.isDone(settled))) return yield* result.left
        const delay = backoffDelay(round)
        yield* Effect.logError(result.left.message).pipe(
          Effect.annotateLogs({
            discovery: token,
            error: result.left._tag,
            retry: Duration.format(delay),
          }),
        )
        yield* Effect.sleep(delay)
      }
    })

    const fiber = yield* Effect.forkScoped(driver)
    const finished = yield* Effect.race(
      Fiber.await(fiber).pipe(Effect.map(Option.some)),
      Deferred.await(settled).pipe(Effect.as(Option.none<Exit.Exit<void, DiscoveryUrlError>>())),
    )
    if (Option.isSome(finished) && Exit.isFailure(finished.value)) yield* finished.value

    return {
      source: `--discovery ${token}`,
      status: () => status,
      peerUrls: Deferred.await(peers),
    } as const
  })
