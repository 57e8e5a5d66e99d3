/** Typed failures of the proxy, and the one place that maps each to its HTTP answer. */
import { Data, Schema } from "effect"

/** A read-only proxy refused a request that could change cluster state (SPEC §4). */
export class WriteForbidden extends Schema.TaggedError<WriteForbidden>()("WriteForbidden", {
  method: Schema.String,
  path: Schema.String,
}) {}

/** A request came back to the proxy that sent it (SPEC §5.6). */
export class LoopDetected extends Schema.TaggedError<LoopDetected>()("LoopDetected", {
  via: Schema.String,
}) {}

/** Discovery has not found the whole cluster yet (SPEC §6.2). */
export class DiscoveryPending extends Schema.TaggedError<DiscoveryPending>()("DiscoveryPending", {
  registered: Schema.Number,
  size: Schema.NullOr(Schema.Number),
}) {}

/** No endpoint is available right now (SPEC §3.5, etcd's 503). */
export class ZeroEndpoints extends Schema.TaggedError<ZeroEndpoints>()("ZeroEndpoints", {}) {}

/** Every endpoint tried failed before answering (SPEC §3.5, etcd's 502). */
export class EndpointsExhausted extends Schema.TaggedError<EndpointsExhausted>()(
  "EndpointsExhausted",
  { tried: Schema.Number },
) {}

/** A request that may have reached a member failed and is not safe to resend (SPEC §3.4). */
export class SentNotRetried extends Schema.TaggedError<SentNotRetried>()("SentNotRetried", {
  endpoint: Schema.String,
  method: Schema.String,
}) {}

/** The request body is over `--max-request-bytes` (SPEC §3.6). */
export class RequestTooLarge extends Schema.TaggedError<RequestTooLarge>()("RequestTooLarge", {
  limit: Schema.Number,
}) {}

/** The request target is not something the proxy forwards (SPEC §3.2). */
export class BadRequestTarget extends Schema.TaggedError<BadRequestTarget>()("BadRequestTarget", {
  target: Schema.String,
}) {}

/** The proxy holds as many requests as it allows itself to (SPEC §5.6 resource bounds). */
export class Overloaded extends Schema.TaggedError<Overloaded>()("Overloaded", {
  limit: Schema.Number,
}) {}

/** Every answer the proxy makes itself instead of forwarding. */
export type ProxyRefusal =
  | WriteForbidden
  | LoopDetected
  | DiscoveryPending
  | ZeroEndpoints
  | EndpointsExhausted
  | SentNotRetried
  | RequestTooLarge
  | BadRequestTarget
  | Overloaded

export interface HttpAnswer {
  readonly status: number
  readonly body: string
}

const answer = (status: number, message: string): HttpAnswer => ({
  status,
  body: JSON.stringify({ message }),
})

/** The HTTP status and JSON body for each refusal; the bodies etcd makes are byte for byte its own. */
export const httpAnswer = (refusal: ProxyRefusal): HttpAnswer => {
  switch (refusal._tag) {
    case "WriteForbidden":
      return answer(501, `httpproxy: read-only proxy refuses ${refusal.method} ${refusal.path}`)
    case "LoopDetected":
      return answer(508, `httpproxy: forwarding loop detected via ${refusal.via}`)
    case "DiscoveryPending":
      return answer(
        503,
        refusal.size === null
          ? "httpproxy: discovery pending: waiting for the discovery service"
          : `httpproxy: discovery pending: ${refusal.registered} of ${refusal.size} members registered`,
      )
    case "ZeroEndpoints":
      return answer(503, "httpproxy: zero endpoints currently available")
    case "EndpointsExhausted":
      return answer(502, `httpproxy: unable to get response from ${refusal.tried} endpoint(s)`)
    case "SentNotRetried":
      return answer(
        502,
        `httpproxy: ${refusal.endpoint} failed after the request was sent; ${refusal.method} not retried`,
      )
    case "RequestTooLarge":
      return answer(
        413,
        `httpproxy: request body is larger than --max-request-bytes (${refusal.limit} bytes)`,
      )
    case "BadRequestTarget":
      return answer(400, `httpproxy: request target ${refusal.target} is not a path`)
    case "Overloaded":
      return answer(
        503,
        `httpproxy: too many requests in flight (limit ${refusal.limit}); try again`,
      )
  }
}

/** A command line or environment value that cannot start the proxy: exit 2 with one line. */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

/** The proxy cannot run with this data dir or listener: exit 1 with one line. */
export class StartupError extends Data.TaggedError("StartupError")<{
  readonly message: string
  readonly cause?: unknown
}> {}
