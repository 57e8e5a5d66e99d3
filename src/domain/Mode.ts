/** Which requests a read-only proxy may forward (SPEC §4): pure classification, no I/O. */
import type { ProxyMode } from "./Config.js"
import { WriteForbidden } from "./Errors.js"

/** The v3 JSON gateway RPCs that cannot change cluster state. */
export const gatewayReadRpcs: ReadonlyArray<string> = [
  "kv/range",
  "watch",
  "lease/leases",
  "lease/timetolive",
  // The gateway's other bindings of LeaseLeases and LeaseTimeToLive (etcd3gw uses them).
  "kv/lease/leases",
  "kv/lease/timetolive",
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
  // Members serve the gRPC health service; orchestrators probe with it.
  "/grpc.health.v1.Health/Check",
  "/grpc.health.v1.Health/Watch",
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

/** `/package.Service/Method`: a first path segment with a dot, which no etcd HTTP path has. */
const grpcMethodPath = /^\/[^/]*\.[^/]*\/[^/]*$/

/**
 * Whether an HTTP/2 stream is judged as a gRPC call: its content type says so, or its path names
 * a gRPC method. The path alone suffices because older gRPC servers run a method whatever the
 * content type; judged as gRPC, such a stream is refused unless the method is a read.
 */
export const isGrpcCall = (path: string, contentType: string | undefined): boolean =>
  (contentType !== undefined && contentType.startsWith("application/grpc")) ||
  grpcMethodPath.test(path)

/**
 * Whether an HTTP/2 stream can change cluster state: gRPC calls by method, anything else (the
 * JSON gateway or v2 over HTTP/2) by the HTTP rules.
 */
export const classifyHttp2 = (
  method: string,
  path: string,
  contentType: string | undefined,
): Access => (isGrpcCall(path, contentType) ? classifyGrpc(path) : classifyHttp(method, path))

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

/** The refusal for an HTTP/2 stream: a gRPC call names `gRPC` as its method, as `guardGrpc` does. */
export const guardHttp2 = (
  mode: ProxyMode,
  method: string,
  path: string,
  contentType: string | undefined,
): WriteForbidden | undefined => {
  if (mode === "readwrite") return undefined
  return isGrpcCall(path, contentType) ? guardGrpc(mode, path) : guardHttp(mode, method, path)
}
