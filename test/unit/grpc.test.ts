/** The pure parts of HTTP/2 and gRPC handling: protocol sniffing, read-only verdicts, gRPC answers. */
import { describe, expect, it } from "@effect/vitest"
import {
  DiscoveryPending,
  EndpointsExhausted,
  grpcAnswer,
  LoopDetected,
  Overloaded,
  WriteForbidden,
  ZeroEndpoints,
  type ProxyRefusal,
} from "../../src/domain/Errors.js"
import { http2Preface, percentEncode, sniffPreface } from "../../src/services/request/Http2.js"
import {
  classifyGrpc,
  classifyHttp2,
  grpcReadMethods,
  guardGrpc,
  guardHttp2,
  isGrpcCall,
  type Access,
} from "../../src/domain/Mode.js"
import { firstEndpoint } from "../../src/domain/Admission.js"

/**
 * Every method etcd serves over gRPC (etcd 3.4 rpc.proto, v3lock, v3election and the gRPC
 * health service, plus the 3.5 additions), with the verdict SPEC §4 gives it: seven reads,
 * everything else refused, including reads the SPEC does not list (Hash, UserGet, Check, ...).
 */
const etcdMethods: ReadonlyArray<readonly [string, Access]> = [
  ["/etcdserverpb.KV/Range", "read"],
  ["/etcdserverpb.KV/Put", "write"],
  ["/etcdserverpb.KV/DeleteRange", "write"],
  ["/etcdserverpb.KV/Txn", "write"],
  ["/etcdserverpb.KV/Compact", "write"],
  ["/etcdserverpb.Watch/Watch", "read"],
  ["/etcdserverpb.Lease/LeaseGrant", "write"],
  ["/etcdserverpb.Lease/LeaseRevoke", "write"],
  ["/etcdserverpb.Lease/LeaseKeepAlive", "write"],
  ["/etcdserverpb.Lease/LeaseTimeToLive", "read"],
  ["/etcdserverpb.Lease/LeaseLeases", "read"],
  ["/etcdserverpb.Cluster/MemberAdd", "write"],
  ["/etcdserverpb.Cluster/MemberRemove", "write"],
  ["/etcdserverpb.Cluster/MemberUpdate", "write"],
  ["/etcdserverpb.Cluster/MemberList", "read"],
  ["/etcdserverpb.Cluster/MemberPromote", "write"],
  ["/etcdserverpb.Maintenance/Alarm", "write"],
  ["/etcdserverpb.Maintenance/Status", "read"],
  ["/etcdserverpb.Maintenance/Defragment", "write"],
  ["/etcdserverpb.Maintenance/Hash", "write"],
  ["/etcdserverpb.Maintenance/HashKV", "write"],
  ["/etcdserverpb.Maintenance/Snapshot", "write"],
  ["/etcdserverpb.Maintenance/MoveLeader", "write"],
  ["/etcdserverpb.Maintenance/Downgrade", "write"],
  ["/etcdserverpb.Auth/AuthEnable", "write"],
  ["/etcdserverpb.Auth/AuthDisable", "write"],
  ["/etcdserverpb.Auth/AuthStatus", "write"],
  ["/etcdserverpb.Auth/Authenticate", "read"],
  ["/etcdserverpb.Auth/UserAdd", "write"],
  ["/etcdserverpb.Auth/UserGet", "write"],
  ["/etcdserverpb.Auth/UserList", "write"],
  ["/etcdserverpb.Auth/UserDelete", "write"],
  ["/etcdserverpb.Auth/UserChangePassword", "write"],
  ["/etcdserverpb.Auth/UserGrantRole", "write"],
  ["/etcdserverpb.Auth/UserRevokeRole", "write"],
  ["/etcdserverpb.Auth/RoleAdd", "write"],
  ["/etcdserverpb.Auth/RoleGet", "write"],
  ["/etcdserverpb.Auth/RoleList", "write"],
  ["/etcdserverpb.Auth/RoleDelete", "write"],
  ["/etcdserverpb.Auth/RoleGrantPermission", "write"],
  ["/etcdserverpb.Auth/RoleRevokePermission", "write"],
  ["/v3lockpb.Lock/Lock", "write"],
  ["/v3lockpb.Lock/Unlock", "write"],
  ["/v3electionpb.Election/Campaign", "write"],
  ["/v3electionpb.Election/Proclaim", "write"],
  ["/v3electionpb.Election/Leader", "write"],
  ["/v3electionpb.Election/Observe", "write"],
  ["/v3electionpb.Election/Resign", "write"],
  ["/grpc.health.v1.Health/Check", "read"],
  ["/grpc.health.v1.Health/Watch", "read"],
]

describe("classifyGrpc over every etcd method", () => {
  it("gives each method its verdict", () => {
    for (const [path, access] of etcdMethods) expect(classifyGrpc(path), path).toBe(access)
  })

  it("the table's reads are exactly the SPEC's seven", () => {
    const reads = etcdMethods.filter(([, access]) => access === "read").map(([path]) => path)
    expect([...reads].sort()).toEqual([...grpcReadMethods].sort())
  })

  it("odd spellings of a read method are writes", () => {
    for (const path of [
      "/etcdserverpb.KV/Range?x=1",
      "/etcdserverpb.KV/Range/",
      "/etcdserverpb.KV//Range",
      "//etcdserverpb.KV/Range",
      "/etcdserverpb.KV/%52ange",
      "/etcdserverpb.kv/Range",
      "/etcdserverpb.KV/range",
      "/Etcdserverpb.KV/Range",
      "/etcdserverpb.KV/Range ",
      "/etcdserverpb.KV/Range\u0000",
      "/etcdserverpb.KV/./Range",
      "/etcdserverpb.Watch/Watch/../../etcdserverpb.KV/Put",
      "etcdserverpb.KV/Range",
      "/KV/Range",
    ]) {
      expect(classifyGrpc(path), JSON.stringify(path)).toBe("write")
    }
  })

  it("guardGrpc names gRPC and the path in its refusal", () => {
    for (const [path, access] of etcdMethods) {
      const refusal = guardGrpc("readonly", path)
      if (access === "read") expect(refusal, path).toBeUndefined()
      else expect(refusal, path).toEqual(new WriteForbidden({ method: "gRPC", path }))
      expect(guardGrpc("readwrite", path), path).toBeUndefined()
    }
  })
})

describe("HTTP/2 streams (read-only front)", () => {
  const grpc = "application/grpc"

  it("a stream is a gRPC call by content type, or by a path naming a gRPC method", () => {
    expect(isGrpcCall("/etcdserverpb.KV/Put", grpc)).toBe(true)
    expect(isGrpcCall("/etcdserverpb.KV/Put", "application/grpc+proto")).toBe(true)
    expect(isGrpcCall("/etcdserverpb.KV/Put", undefined)).toBe(true)
    expect(isGrpcCall("/etcdserverpb.KV/Put", "application/json")).toBe(true)
    expect(isGrpcCall("/v3/kv/range", grpc)).toBe(true)
    expect(isGrpcCall("/v3/kv/range", "application/json")).toBe(false)
    expect(isGrpcCall("/v2/keys/a.b", undefined)).toBe(false)
    expect(isGrpcCall("/version", undefined)).toBe(false)
    expect(isGrpcCall("/health", undefined)).toBe(false)
  })

  const table: ReadonlyArray<readonly [string, string, string | undefined, Access]> = [
    // gRPC: by method, whatever the HTTP method says.
    ["POST", "/etcdserverpb.KV/Range", grpc, "read"],
    ["POST", "/etcdserverpb.Watch/Watch", grpc, "read"],
    ["POST", "/etcdserverpb.KV/Put", grpc, "write"],
    ["GET", "/etcdserverpb.KV/Put", grpc, "write"],
    ["GET", "/etcdserverpb.KV/Put", undefined, "write"],
    ["GET", "/etcdserverpb.KV/Put", "text/plain", "write"],
    ["POST", "/etcdserverpb.KV/Range", "application/json", "read"],
    // A gateway path sent as gRPC is no gRPC read.
    ["POST", "/v3/kv/range", grpc, "write"],
    // Everything else: the HTTP rules.
    ["GET", "/v2/keys/a?wait=true", undefined, "read"],
    ["HEAD", "/version", undefined, "read"],
    ["PUT", "/v2/keys/a", undefined, "write"],
    ["DELETE", "/v2/keys/a", "application/x-www-form-urlencoded", "write"],
    ["POST", "/v3/kv/range", "application/json", "read"],
    ["POST", "/v3beta/watch", undefined, "read"],
    ["POST", "/v3/kv/put", "application/json", "write"],
  ]

  it("classifyHttp2 judges each stream", () => {
    for (const [method, path, contentType, access] of table) {
      expect(classifyHttp2(method, path, contentType), `${method} ${path} ${contentType}`).toBe(
        access,
      )
    }
  })

  it("guardHttp2 refuses writes in readonly only, naming gRPC or the HTTP method", () => {
    expect(guardHttp2("readonly", "POST", "/etcdserverpb.KV/Txn", grpc)).toEqual(
      new WriteForbidden({ method: "gRPC", path: "/etcdserverpb.KV/Txn" }),
    )
    expect(guardHttp2("readonly", "PUT", "/v2/keys/a?value=1", undefined)).toEqual(
      new WriteForbidden({ method: "PUT", path: "/v2/keys/a" }),
    )
    for (const [method, path, contentType, access] of table) {
      const refusal = guardHttp2("readonly", method, path, contentType)
      expect(refusal === undefined, `${method} ${path}`).toBe(access === "read")
      expect(
        guardHttp2("readwrite", method, path, contentType),
        `${method} ${path}`,
      ).toBeUndefined()
    }
  })
})

describe("sniffPreface", () => {
  const bytes = (text: string) => Buffer.from(text, "latin1")

  it("the whole preface, alone or followed by frames, is HTTP/2", () => {
    expect(sniffPreface(http2Preface)).toBe("h2")
    expect(
      sniffPreface(Buffer.concat([http2Preface, Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])])),
    ).toBe("h2")
  })

  it("any prefix of the preface waits for more bytes", () => {
    for (let n = 0; n < http2Preface.length; n++) {
      expect(sniffPreface(http2Preface.subarray(0, n)), String(n)).toBe("undecided")
    }
  })

  it("HTTP/1 requests are told apart at their first differing byte", () => {
    for (const request of [
      "GET /v2/keys/a HTTP/1.1\r\n",
      "PUT /v2/keys/a HTTP/1.1\r\n",
      "POST /v3/kv/range HTTP/1.1\r\n",
      "PRI / HTTP/1.1\r\n",
      "PRI * HTTP/1.1\r\n",
    ]) {
      expect(sniffPreface(bytes(request)), request).toBe("http/1.1")
    }
    expect(sniffPreface(bytes("G"))).toBe("http/1.1")
    expect(sniffPreface(bytes("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\r"))).toBe("http/1.1")
  })
})

const grpcStatusOf = (refusal: ProxyRefusal): number => grpcAnswer(refusal).code
const refusalMessage = (refusal: ProxyRefusal): string => grpcAnswer(refusal).message

describe("gRPC answers the proxy makes", () => {
  it("a read-only refusal is UNIMPLEMENTED with the HTTP refusal's words", () => {
    const refusal = new WriteForbidden({ method: "gRPC", path: "/etcdserverpb.KV/Put" })
    expect(grpcStatusOf(refusal)).toBe(12)
    expect(refusalMessage(refusal)).toBe(
      "httpproxy: read-only proxy refuses gRPC /etcdserverpb.KV/Put",
    )
  })

  it("having no member to ask is UNAVAILABLE, so clients retry; overload is RESOURCE_EXHAUSTED", () => {
    expect(grpcStatusOf(new ZeroEndpoints())).toBe(14)
    expect(grpcStatusOf(new EndpointsExhausted({ tried: 3 }))).toBe(14)
    expect(grpcStatusOf(new DiscoveryPending({ registered: 1, size: 3 }))).toBe(14)
    expect(grpcStatusOf(new LoopDetected({ via: "http://127.0.0.1:2379" }))).toBe(14)
    expect(grpcStatusOf(new Overloaded({ limit: 10 }))).toBe(8)
    expect(refusalMessage(new EndpointsExhausted({ tried: 3 }))).toBe(
      "httpproxy: unable to get response from 3 endpoint(s)",
    )
  })

  it("grpc-message is percent-encoded outside printable ASCII, and % itself", () => {
    expect(percentEncode("httpproxy: refuses gRPC /a.B/C (x)")).toBe(
      "httpproxy: refuses gRPC /a.B/C (x)",
    )
    expect(percentEncode("100%")).toBe("100%25")
    expect(percentEncode("line\nnext\t")).toBe("line%0Anext%09")
    expect(percentEncode("café")).toBe("caf%C3%A9")
    expect(percentEncode("\u007f")).toBe("%7F")
  })
})

describe("firstIndex", () => {
  it("sticky always starts at the first endpoint; round-robin rotates", () => {
    expect([0, 1, 2, 3].map((turn) => firstEndpoint("sticky", 3, turn))).toEqual([0, 0, 0, 0])
    expect([0, 1, 2, 3].map((turn) => firstEndpoint("round-robin", 3, turn))).toEqual([0, 1, 2, 0])
    expect(firstEndpoint("round-robin", 0, 5)).toBe(0)
  })
})
