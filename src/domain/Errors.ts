/** Typed failures of the proxy, and the one place that maps each to its HTTP answer. */
import * as Data from "effect/Data"
import * as Schema from "effect/Schema"

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

/** The request cannot be forwarded as it is (a header or value the upstream client refuses). */
export class BadRequest extends Schema.TaggedError<BadRequest>()("BadRequest", {
  reason: Schema.String,
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
  | BadRequest
  | Overloaded

/** The words of each refusal; etcd's own are byte for byte its own. */
export const refusalMessage = (refusal: ProxyRefusal): string => {
  switch (refusal._tag) {
    case "WriteForbidden":
      return `httpproxy: read-only proxy refuses ${refusal.method} ${refusal.path}`
    case "LoopDetected":
      return `httpproxy: forwarding loop detected via ${refusal.via}`
    case "DiscoveryPending":
      return refusal.size === null
        ? "httpproxy: discovery pending: waiting for the discovery service"
        : `httpproxy: discovery pending: ${refusal.registered} of ${refusal.size} members registered`
    case "ZeroEndpoints":
      return "httpproxy: zero endpoints currently available"
    case "EndpointsExhausted":
      return `httpproxy: unable to get response from ${refusal.tried} endpoint(s)`
    case "SentNotRetried":
      return `httpproxy: ${refusal.endpoint} failed after the request was sent; ${refusal.method} not retried`
    case "RequestTooLarge":
      return `httpproxy: request body is larger than --max-request-bytes (${refusal.limit} bytes)`
    case "BadRequestTarget":
      return `httpproxy: request target ${refusal.target} is not a path`
    case "BadRequest":
      return `httpproxy: cannot forward this request: ${refusal.reason}`
    case "Overloaded":
      return `httpproxy: too many requests in flight (limit ${refusal.limit}); try again`
  }
}

const httpStatus: Record<ProxyRefusal["_tag"], number> = {
  WriteForbidden: 501,
  LoopDetected: 508,
  DiscoveryPending: 503,
  ZeroEndpoints: 503,
  EndpointsExhausted: 502,
  SentNotRetried: 502,
  RequestTooLarge: 413,
  BadRequestTarget: 400,
  BadRequest: 400,
  Overloaded: 503,
}

/** gRPC status codes: UNIMPLEMENTED for refused writes, RESOURCE_EXHAUSTED, else UNAVAILABLE. */
const grpcCode: Record<ProxyRefusal["_tag"], number> = {
  WriteForbidden: 12,
  LoopDetected: 14,
  DiscoveryPending: 14,
  ZeroEndpoints: 14,
  EndpointsExhausted: 14,
  SentNotRetried: 14,
  RequestTooLarge: 8,
  BadRequestTarget: 3,
  BadRequest: 3,
  Overloaded: 8,
}

export interface HttpAnswer {
  readonly status: number
  readonly body: string
}

/** The HTTP answer to a refusal: its status and a JSON object with its `message`. */
export const httpAnswer = (refusal: ProxyRefusal): HttpAnswer => ({
  status: httpStatus[refusal._tag],
  body: JSON.stringify({ message: refusalMessage(refusal) }),
})

/** The gRPC answer to a refusal, for calls over HTTP/2: `grpc-status` and `grpc-message`. */
export const grpcAnswer = (
  refusal: ProxyRefusal,
): { readonly code: number; readonly message: string } => ({
  code: grpcCode[refusal._tag],
  message: refusalMessage(refusal),
})

/** A command line or environment value that cannot start the proxy: exit 2 with one line. */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

/** The proxy cannot run with this data dir or listener: exit 1 with one line. */
export class StartupError extends Data.TaggedError("StartupError")<{
  readonly message: string
  readonly cause?: unknown
}> {}
