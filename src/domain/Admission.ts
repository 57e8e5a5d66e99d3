/**
 * What happens to a request before any member is dialled (SPEC §11): one pure decision, in one
 * fixed order, for every front (HTTP/1.1, the HTTP/2 relay, read-only HTTP/2 streams).
 */
import type { Balance, ProxyMode } from "./Config.js"
import type { DiscoveryStatus } from "./Discovery.js"
import {
  DiscoveryPending,
  LoopDetected,
  Overloaded,
  RequestTooLarge,
  type ProxyRefusal,
} from "./Errors.js"
import { guardHttp, guardHttp2, pathOf } from "./Mode.js"

/** Paths the proxy answers itself on its client listeners (SPEC §8.1, §8.2). */
export const configPath = "/v2/config/local/proxy"
export const metricsPath = "/metrics"

export type OwnEndpoint = "config" | "metrics"

/**
 * A `Via` claim that this proxy already handled the request. Only a claim the proxy can check
 * against the requests it sent out and still waits on is believed (SPEC §3.13): a forged one
 * costs that request alone.
 */
export type LoopClaim =
  | { readonly _tag: "None" }
  | { readonly _tag: "Forged" }
  | { readonly _tag: "Genuine"; readonly endpointKey: string; readonly endpointUrl: string }

export const noLoopClaim: LoopClaim = { _tag: "None" }

/** The request as a front sees it. `target` is the origin-form path and query. */
export interface Incoming {
  readonly method: string
  readonly target: string
  /** An HTTP/2 stream judged as a gRPC call (refusals are answered in gRPC's form). */
  readonly grpc: boolean
  /** The declared body length; `undefined` when there is none or it is chunked. */
  readonly contentLength: number | undefined
  readonly loop: LoopClaim
}

/** What the proxy knows at that moment, read synchronously by the front. */
export interface Situation {
  readonly mode: ProxyMode
  readonly cors: boolean
  readonly discovery: DiscoveryStatus
  readonly maxRequestBytes: number
  /** Requests forwarded and not finished, everywhere. */
  readonly inFlight: number
  readonly inFlightLimit: number
  /** Requests forwarded and not finished for this request's client address. */
  readonly clientInFlight: number
  /** Client addresses with requests in flight (this one included once it has any). */
  readonly activeClients: number
}

export type Admission =
  | { readonly _tag: "Own"; readonly endpoint: OwnEndpoint }
  | { readonly _tag: "Preflight" }
  | {
      readonly _tag: "Refuse"
      readonly refusal: ProxyRefusal
      /** An endpoint this request proves to loop back into the proxy: excluded until the next refresh. */
      readonly excludeEndpoint: string | undefined
    }
  | { readonly _tag: "Forward"; readonly watch: boolean }

const refuse = (refusal: ProxyRefusal, excludeEndpoint?: string): Admission => ({
  _tag: "Refuse",
  refusal,
  excludeEndpoint,
})

const ownConfig: Admission = { _tag: "Own", endpoint: "config" }
const ownMetrics: Admission = { _tag: "Own", endpoint: "metrics" }
const preflight: Admission = { _tag: "Preflight" }
const forwardWatch: Admission = { _tag: "Forward", watch: true }
const forwardPlain: Admission = { _tag: "Forward", watch: false }

const watchPath = /^\/v3[a-z]*\/watch$/

/**
 * Long polls, streams and watches: they hold a member connection for as long as nothing
 * happens, are closed first on shutdown, and are never cut by the answer timeout.
 */
export const isWatch = (method: string, target: string, grpc: boolean): boolean => {
  if (grpc) return pathOf(target) === "/etcdserverpb.Watch/Watch"
  return target.includes("wait=true") || (method === "POST" && watchPath.test(pathOf(target)))
}

/**
 * Under pressure (half the in-flight limit taken), one client address may hold at most its
 * fair share: the limit divided among the addresses with requests in flight. Below that
 * nobody is refused, so a single busy client can use the whole proxy.
 */
export const overFairShare = (situation: Situation): boolean => {
  if (situation.inFlight >= situation.inFlightLimit) return true
  if (situation.inFlight * 2 < situation.inFlightLimit) return false
  const clients = Math.max(1, situation.activeClients)
  return situation.clientInFlight >= Math.floor(situation.inFlightLimit / clients)
}

/**
 * The decision for one request (or, for the relay, one connection). The order is fixed:
 * the proxy's own endpoints, a loop, the mode (a CORS pre-flight the proxy answers itself
 * first), discovery, then the limits.
 */
export const admit = (request: Incoming, situation: Situation): Admission => {
  const path = pathOf(request.target)
  if (!request.grpc) {
    if (path === configPath) return ownConfig
    if (path === metricsPath) return ownMetrics
  }
  switch (request.loop._tag) {
    case "Genuine":
      return refuse(new LoopDetected({ via: request.loop.endpointUrl }), request.loop.endpointKey)
    case "Forged":
      return refuse(new LoopDetected({ via: "a Via entry this proxy did not send" }))
  }
  if (situation.cors && request.method === "OPTIONS" && !request.grpc) return preflight
  const forbidden = request.grpc
    ? guardHttp2(situation.mode, request.method, request.target, "application/grpc")
    : guardHttp(situation.mode, request.method, request.target)
  if (forbidden !== undefined) return refuse(forbidden)
  if (situation.discovery._tag === "Pending") {
    return refuse(
      new DiscoveryPending({
        registered: situation.discovery.registered,
        size: situation.discovery.size,
      }),
    )
  }
  if (request.contentLength !== undefined && request.contentLength > situation.maxRequestBytes) {
    return refuse(new RequestTooLarge({ limit: situation.maxRequestBytes }))
  }
  if (overFairShare(situation)) return refuse(new Overloaded({ limit: situation.inFlightLimit }))
  return isWatch(request.method, request.target, request.grpc) ? forwardWatch : forwardPlain
}

/** Where the endpoint order starts for the next request or connection (SPEC §3.3). */
export const firstEndpoint = (balance: Balance, count: number, turn: number): number =>
  balance === "sticky" || count === 0 ? 0 : turn % count
