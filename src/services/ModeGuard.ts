/** Decides which requests a read-only proxy may forward (SPEC §4), as one pure function. */
import { Effect } from "effect"
import { ProxyConfig, type ProxyMode } from "../domain/Config.js"
import { WriteForbidden } from "../domain/Errors.js"

/** The v3 JSON gateway RPCs that cannot change cluster state. */
export const gatewayReadRpcs: ReadonlyArray<string> = [
  "kv/range",
  "watch",
  "lease/leases",
  "lease/timetolive",
  "cluster/member/list",
  "maintenance/status",
  "auth/authenticate",
]

/** The gateway's path prefixes: etcd 3.4 serves `/v3` and `/v3beta`, older members `/v3alpha`. */
export const gatewayPrefixes: ReadonlyArray<string> = ["/v3/", "/v3beta/", "/v3alpha/"]

/** The gRPC methods that cannot change cluster state. */
export const grpcReadMethods: ReadonlyArray<string> = [
  "/etcdserverpb.KV/Range",
  "/etcdserverpb.Watch/Watch",
  "/etcdserverpb.Lease/LeaseLeases",
  "/etcdserverpb.Lease/LeaseTimeToLive",
  "/etcdserverpb.Cluster/MemberList",
  "/etcdserverpb.Maintenance/Status",
  "/etcdserverpb.Auth/Authenticate",
]

const gatewayReadPaths: ReadonlySet<string> = new Set(
  gatewayPrefixes.flatMap((prefix) => gatewayReadRpcs.map((rpc) => prefix + rpc)),
)
const grpcReads: ReadonlySet<string> = new Set(grpcReadMethods)

/** The path of a request target, without its query string. */
export const pathOf = (target: string): string => {
  const q = target.indexOf("?")
  return q === -1 ? target : target.slice(0, q)
}

export type Access = "read" | "write"

/**
 * Whether an HTTP request can change cluster state. GET and HEAD never do. A POST is a read
 * only when its path is, literally, a gateway read RPC: an encoded, dotted or otherwise
 * unusual spelling is treated as a write, since refusing a strange read is safe and
 * forwarding a disguised write is not.
 */
export const classifyHttp = (method: string, target: string): Access => {
  if (method === "GET" || method === "HEAD") return "read"
  if (method === "POST" && gatewayReadPaths.has(pathOf(target))) return "read"
  return "write"
}

/** Whether a gRPC call (its `:path`) can change cluster state. */
export const classifyGrpc = (path: string): Access => (grpcReads.has(path) ? "read" : "write")

/** The refusal for a request, or `undefined` when the mode lets it through. */
export const guardHttp = (
  mode: ProxyMode,
  method: string,
  target: string,
): WriteForbidden | undefined =>
  mode === "readwrite" || classifyHttp(method, target) === "read"
    ? undefined
    : new WriteForbidden({ method, path: pathOf(target) })

export const guardGrpc = (mode: ProxyMode, path: string): WriteForbidden | undefined =>
  mode === "readwrite" || classifyGrpc(path) === "read"
    ? undefined
    : new WriteForbidden({ method: "gRPC", path })

/** The mode the proxy runs in, with its checks bound to it for the hot path. */
export class ModeGuard extends Effect.Service<ModeGuard>()("etcd-proxy/ModeGuard", {
  effect: Effect.gen(function* () {
    const { mode } = yield* ProxyConfig
    return {
      mode,
      checkHttp: (method: string, target: string): WriteForbidden | undefined =>
        guardHttp(mode, method, target),
      checkGrpc: (path: string): WriteForbidden | undefined => guardGrpc(mode, path),
    } as const
  }),
}) {}
