/** The read-only classification table (SPEC §4): which requests may change cluster state. */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { makeProxyConfig, ProxyConfig, type ProxyMode } from "../../src/domain/Config.js"
import { httpAnswer, WriteForbidden } from "../../src/domain/Errors.js"
import { classifyGrpc, classifyHttp, guardGrpc, guardHttp } from "../../src/domain/Mode.js"
import { ModeGuard } from "../../src/services/request/ModeGuard.js"

const prefixes = ["/v3/", "/v3beta/", "/v3alpha/"]

const readRpcs = [
  "kv/range",
  "watch",
  "lease/leases",
  "lease/timetolive",
  "kv/lease/leases",
  "kv/lease/timetolive",
  "cluster/member/list",
  "maintenance/status",
  "auth/authenticate",
]

const writeRpcs = [
  "kv/put",
  "kv/deleterange",
  "kv/txn",
  "kv/compaction",
  "lease/grant",
  "lease/revoke",
  "kv/lease/revoke",
  "lease/keepalive",
  "cluster/member/add",
  "cluster/member/remove",
  "cluster/member/update",
  "cluster/member/promote",
  "auth/enable",
  "auth/disable",
  "auth/user/add",
  "auth/user/delete",
  "auth/user/changepw",
  "auth/user/grant",
  "auth/role/add",
  "auth/role/grant",
  "maintenance/defragment",
  "maintenance/alarm",
  "maintenance/snapshot",
  "maintenance/hash",
  "maintenance/transfer-leadership",
  "maintenance/move-leader",
]

const anyPaths = [
  "/v2/keys/a",
  "/v2/keys/a?wait=true",
  "/v2/members",
  "/v2/stats/self",
  "/v3/kv/put",
  "/v3/kv/range",
  "/health",
  "/version",
  "/",
  "/anything/else",
]

describe("classifyHttp", () => {
  it("GET and HEAD are reads on every path", () => {
    for (const method of ["GET", "HEAD"]) {
      for (const path of anyPaths)
        expect(classifyHttp(method, path), `${method} ${path}`).toBe("read")
    }
  })

  it("POST to every gateway read RPC under every gateway prefix is a read", () => {
    for (const prefix of prefixes) {
      for (const rpc of readRpcs)
        expect(classifyHttp("POST", prefix + rpc), prefix + rpc).toBe("read")
    }
  })

  it("POST to the gateway's write RPCs is a write under every prefix", () => {
    for (const prefix of prefixes) {
      for (const rpc of writeRpcs) {
        expect(classifyHttp("POST", prefix + rpc), prefix + rpc).toBe("write")
      }
    }
  })

  it("a read RPC under a prefix the gateway does not have is a write", () => {
    for (const path of ["/v2/kv/range", "/v4/kv/range", "/kv/range", "/v3beta1/kv/range"]) {
      expect(classifyHttp("POST", path), path).toBe("write")
    }
  })

  it("every method but GET and HEAD is a write on v2 paths", () => {
    for (const method of ["PUT", "DELETE", "POST", "PATCH", "OPTIONS"]) {
      for (const path of ["/v2/keys/a", "/v2/keys/dir?dir=true", "/v2/members", "/v2/machines"]) {
        expect(classifyHttp(method, path), `${method} ${path}`).toBe("write")
      }
    }
  })

  it("the gateway read paths are reads for POST only", () => {
    for (const method of ["PUT", "DELETE", "PATCH", "OPTIONS"]) {
      expect(classifyHttp(method, "/v3/kv/range"), method).toBe("write")
    }
  })

  it("odd spellings of a read path are writes", () => {
    for (const path of [
      "/v3/kv/range/../put",
      "/v3/kv/range/",
      "//v3/kv/range",
      "/v3/kv%2Frange",
      "/v3/kv/%72ange",
      "/V3/kv/range",
      "/v3/KV/range",
      "/v3/./kv/range",
      "/v3/kv/range%00",
      "/v3/kv/range#x",
      "v3/kv/range",
    ]) {
      expect(classifyHttp("POST", path), path).toBe("write")
    }
  })

  it("the query string does not change the verdict", () => {
    expect(classifyHttp("POST", "/v3/kv/range?x=1")).toBe("read")
    expect(classifyHttp("POST", "/v3/watch?")).toBe("read")
    expect(classifyHttp("POST", "/v3/kv/put?kv/range")).toBe("write")
    expect(classifyHttp("POST", "/v2/keys/a?wait=true")).toBe("write")
    expect(classifyHttp("GET", "/v2/keys/a?wait=true&recursive=true")).toBe("read")
  })
})

describe("guardHttp", () => {
  it("readonly refuses writes with WriteForbidden naming the method and the path without query", () => {
    const refusal = guardHttp("readonly", "PUT", "/v2/keys/a?prevExist=false&value=1")
    expect(refusal).toBeInstanceOf(WriteForbidden)
    expect(refusal?.method).toBe("PUT")
    expect(refusal?.path).toBe("/v2/keys/a")
    expect(httpAnswer(refusal!)).toEqual({
      status: 501,
      body: '{"message":"httpproxy: read-only proxy refuses PUT /v2/keys/a"}',
    })
  })

  it("readonly lets reads through", () => {
    expect(guardHttp("readonly", "GET", "/v2/keys/a?wait=true")).toBeUndefined()
    expect(guardHttp("readonly", "POST", "/v3/kv/range")).toBeUndefined()
    expect(guardHttp("readonly", "POST", "/v3beta/watch")).toBeUndefined()
  })

  it("readonly refuses a gateway write", () => {
    expect(guardHttp("readonly", "POST", "/v3/kv/put")?.path).toBe("/v3/kv/put")
    expect(guardHttp("readonly", "POST", "/v3/kv/range/../put")?.path).toBe("/v3/kv/range/../put")
  })

  it("readwrite lets everything through", () => {
    for (const method of ["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"]) {
      for (const path of [...anyPaths, ...writeRpcs.map((rpc) => "/v3/" + rpc)]) {
        expect(guardHttp("readwrite", method, path), `${method} ${path}`).toBeUndefined()
      }
    }
  })
})

const grpcReads = [
  "/etcdserverpb.KV/Range",
  "/etcdserverpb.Watch/Watch",
  "/etcdserverpb.Lease/LeaseLeases",
  "/etcdserverpb.Lease/LeaseTimeToLive",
  "/etcdserverpb.Cluster/MemberList",
  "/etcdserverpb.Maintenance/Status",
  "/etcdserverpb.Auth/Authenticate",
  "/grpc.health.v1.Health/Check",
  "/grpc.health.v1.Health/Watch",
]

const grpcWrites = [
  "/etcdserverpb.KV/Put",
  "/etcdserverpb.KV/Txn",
  "/etcdserverpb.KV/DeleteRange",
  "/etcdserverpb.KV/Compact",
  "/etcdserverpb.Lease/LeaseGrant",
  "/etcdserverpb.Lease/LeaseKeepAlive",
  "/etcdserverpb.Lease/LeaseRevoke",
  "/etcdserverpb.Cluster/MemberAdd",
  "/etcdserverpb.Cluster/MemberRemove",
  "/etcdserverpb.Cluster/MemberPromote",
  "/etcdserverpb.Maintenance/Defragment",
  "/etcdserverpb.Maintenance/Alarm",
  "/etcdserverpb.Maintenance/MoveLeader",
  "/etcdserverpb.Auth/UserAdd",
  "/etcdserverpb.Auth/AuthEnable",
  "/v3lockpb.Lock/Lock",
  "/v3electionpb.Election/Campaign",
]

describe("classifyGrpc", () => {
  it("the seven read methods and the health service are reads", () => {
    for (const path of grpcReads) expect(classifyGrpc(path), path).toBe("read")
  })

  it("writes and unknown methods are writes", () => {
    for (const path of [
      ...grpcWrites,
      "/etcdserverpb.KV/range",
      "/etcdserverpb.kv/Range",
      "/etcdserverpb.KV/Range/",
      "etcdserverpb.KV/Range",
      "/grpc.health.v1.Health/Check/",
      "/grpc.health.v1.Health/List",
      "/",
      "",
    ]) {
      expect(classifyGrpc(path), path).toBe("write")
    }
  })

  it("guardGrpc refuses writes only in readonly", () => {
    const refusal = guardGrpc("readonly", "/etcdserverpb.KV/Put")
    expect(refusal).toBeInstanceOf(WriteForbidden)
    expect(refusal?.path).toBe("/etcdserverpb.KV/Put")
    expect(guardGrpc("readonly", "/etcdserverpb.KV/Range")).toBeUndefined()
    for (const path of [...grpcReads, ...grpcWrites]) {
      expect(guardGrpc("readwrite", path), path).toBeUndefined()
    }
  })
})

describe("ModeGuard service", () => {
  const guardFor = (mode: ProxyMode) =>
    ModeGuard.pipe(
      Effect.provide(
        ModeGuard.Default.pipe(
          Layer.provide(
            Layer.succeed(ProxyConfig, makeProxyConfig({ _tag: "SavedOnly" }, { mode })),
          ),
        ),
      ),
    )

  it.effect("binds the configured mode", () =>
    Effect.gen(function* () {
      const readonly = yield* guardFor("readonly")
      expect(readonly.mode).toBe("readonly")
      expect(readonly.checkHttp("DELETE", "/v2/keys/a?recursive=true")?.path).toBe("/v2/keys/a")
      expect(readonly.checkHttp("GET", "/v2/keys/a")).toBeUndefined()
      expect(readonly.checkGrpc("/etcdserverpb.KV/Txn")).toBeInstanceOf(WriteForbidden)
      const readwrite = yield* guardFor("readwrite")
      expect(readwrite.checkHttp("DELETE", "/v2/keys/a")).toBeUndefined()
      expect(readwrite.checkGrpc("/etcdserverpb.KV/Txn")).toBeUndefined()
    }),
  )
})
