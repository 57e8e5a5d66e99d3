/**
 * gRPC through a read-only proxy (SPEC §3.10, §4): each HTTP/2 stream is classified; reads are
 * forwarded stream for stream, writes end with UNIMPLEMENTED and never reach a member.
 * Real etcdctl and npm etcd3 clients against a real 3-member etcd 3.4, through the built CLI.
 */
import * as http2 from "node:http2"
import { describe, expect, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Etcd3 } from "etcd3"
import { EtcdCluster } from "../support/cluster.js"
import { firstPut } from "../support/etcd3.js"
import { etcdctl, putRetrying, spawnEtcdctl } from "../support/etcdctl.js"
import { startProxy, type ProxyProcess } from "../support/proxy.js"

class Proxy extends Context.Tag("test/ReadOnlyProxy")<Proxy, ProxyProcess>() {}

const environment = Layer.scoped(
  Proxy,
  Effect.flatMap(EtcdCluster, (cluster) =>
    startProxy({ args: ["--proxy", "readonly", "--initial-cluster", cluster.initialCluster] }),
  ),
).pipe(Layer.provideMerge(EtcdCluster.layer({ size: 3 })))

const ok = (result: { code: number; stdout: string; stderr: string }) => {
  expect(result.code, result.stderr).toBe(0)
  return result.stdout
}

const refusal = (method: string) =>
  `code = Unimplemented desc = httpproxy: read-only proxy refuses gRPC /etcdserverpb.${method}`

/** The sum over all members of a metric's samples whose line contains every one of `parts`. */
const memberMetric = (name: string, ...parts: ReadonlyArray<string>) =>
  Effect.flatMap(EtcdCluster, (cluster) =>
    Effect.promise(async () => {
      let sum = 0
      for (const member of cluster.members) {
        const child = member.process
        if (child === undefined || child.exitCode !== null || child.signalCode !== null) continue
        const text = await fetch(`${member.clientUrl}/metrics`).then((r) => r.text())
        for (const line of text.split("\n")) {
          if (line.startsWith(name) && parts.every((p) => line.includes(p))) {
            sum += Number(line.split(" ").pop())
          }
        }
      }
      return sum
    }),
  )

const openWatchStreams = memberMetric("etcd_debugging_mvcc_watch_stream_total ")

/** Polls until `effect` yields `expected` (bounded), for counters members update asynchronously. */
const eventually = <A>(effect: Effect.Effect<A, never, EtcdCluster>, expected: A) =>
  Effect.gen(function* () {
    let last = yield* effect
    for (let i = 0; i < 40 && last !== expected; i++) {
      yield* Effect.sleep("50 millis")
      last = yield* effect
    }
    expect(last).toBe(expected)
  })

interface Answer {
  readonly headers: http2.IncomingHttpHeaders
  readonly endedWithHeaders: boolean
  readonly body: Buffer
  readonly trailers: http2.IncomingHttpHeaders | undefined
}

/** One HTTP/2 request with prior knowledge, as gRPC clients send them. */
const h2Request = (url: string, headers: http2.OutgoingHttpHeaders, body?: Buffer) =>
  Effect.async<Answer, Error>((resume) => {
    const session = http2.connect(url)
    session.on("error", (error) => resume(Effect.fail(error)))
    const request = session.request(headers)
    const chunks: Array<Buffer> = []
    let answer: Omit<Answer, "body"> | undefined
    request.on("response", (received, flags) => {
      answer = {
        headers: received,
        endedWithHeaders: (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0,
        trailers: undefined,
      }
    })
    request.on("trailers", (trailers) => {
      answer = { ...answer!, trailers }
    })
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("error", (error) => resume(Effect.fail(error)))
    request.on("close", () => {
      session.close()
      if (answer === undefined) resume(Effect.fail(new Error("no answer")))
      else resume(Effect.succeed({ ...answer, body: Buffer.concat(chunks) }))
    })
    request.end(body)
    return Effect.sync(() => session.destroy())
  })

/** A gRPC message frame around an already-encoded protobuf message. */
const grpcFrame = (message: Buffer): Buffer => {
  const prefix = Buffer.alloc(5)
  prefix.writeUInt32BE(message.length, 1)
  return Buffer.concat([prefix, message])
}

/** `PutRequest { key, value }` in protobuf wire format (fields 1 and 2, both bytes). */
const putRequest = (key: string, value: string): Buffer => {
  const k = Buffer.from(key)
  const v = Buffer.from(value)
  return Buffer.concat([Buffer.from([0x0a, k.length]), k, Buffer.from([0x12, v.length]), v])
}

layer(environment, { excludeTestServices: true, timeout: "60 seconds" })(
  "gRPC through a read-only proxy",
  (it) => {
    it.scoped("etcdctl get, get --prefix, member list and lease reads work", () =>
      Effect.gen(function* () {
        const proxy = yield* Proxy
        const cluster = yield* EtcdCluster
        const direct = ["--endpoints", cluster.members[0]!.clientUrl]
        ok(yield* etcdctl([...direct, "put", "/ro/a", "one"]))
        ok(yield* etcdctl([...direct, "put", "/ro/b", "two"]))
        const granted = ok(yield* etcdctl([...direct, "lease", "grant", "60"]))
        const lease = /lease ([0-9a-f]+) granted/.exec(granted)![1]!

        const via = ["--endpoints", proxy.url]
        expect(ok(yield* etcdctl([...via, "get", "/ro/a", "--print-value-only"]))).toBe("one\n")
        expect(ok(yield* etcdctl([...via, "get", "--prefix", "/ro/"]))).toBe(
          "/ro/a\none\n/ro/b\ntwo\n",
        )
        const list = ok(yield* etcdctl([...via, "member", "list"]))
        for (const member of cluster.members) expect(list).toContain(member.clientUrl)
        expect(ok(yield* etcdctl([...via, "lease", "list"]))).toContain(lease)
        expect(ok(yield* etcdctl([...via, "lease", "timetolive", lease]))).toMatch(
          new RegExp(`lease ${lease} granted with TTL\\(60s\\), remaining\\(\\d+s\\)`),
        )
      }),
    )

    it.scoped("etcdctl watch receives the events another client makes", () =>
      Effect.gen(function* () {
        const proxy = yield* Proxy
        const cluster = yield* EtcdCluster
        const member = cluster.members[1]!.clientUrl
        const watch = yield* spawnEtcdctl(["--endpoints", proxy.url, "watch", "--prefix", "/ro/w/"])
        yield* eventually(openWatchStreams, 1)
        ok(yield* etcdctl(["--endpoints", member, "put", "/ro/w/x", "seen"]))
        yield* watch.waitFor("seen")
        expect(watch.output()).toBe("PUT\n/ro/w/x\nseen\n")
      }),
    )

    it.scoped("writes end with UNIMPLEMENTED naming the method, and no member sees them", () =>
      Effect.gen(function* () {
        const proxy = yield* Proxy
        const cluster = yield* EtcdCluster
        const via = ["--endpoints", proxy.url]
        const startedBefore = yield* memberMetric(
          "grpc_server_started_total",
          'grpc_service="etcdserverpb.KV"',
        )
        const refusedBefore = yield* Effect.promise(() =>
          fetch(`${proxy.url}/metrics`).then((r) => r.text()),
        )

        const put = yield* etcdctl([...via, "put", "/ro/written", "x"])
        expect(put.code).not.toBe(0)
        expect(put.stderr).toContain(refusal("KV/Put"))
        const del = yield* etcdctl([...via, "del", "/ro/a"])
        expect(del.stderr).toContain(refusal("KV/DeleteRange"))
        const txn = yield* etcdctl([...via, "txn"], { input: "\nput /ro/written y\n\n\n" })
        expect(txn.stderr).toContain(refusal("KV/Txn"))
        const grant = yield* etcdctl([...via, "lease", "grant", "10"])
        expect(grant.stderr).toContain(refusal("Lease/LeaseGrant"))
        const compact = yield* etcdctl([...via, "compaction", "1"])
        expect(compact.stderr).toContain(refusal("KV/Compact"))

        const direct = ["--endpoints", cluster.members[2]!.clientUrl]
        expect(ok(yield* etcdctl([...direct, "get", "/ro/written"]))).toBe("")
        expect(ok(yield* etcdctl([...direct, "get", "/ro/a", "--print-value-only"]))).toBe("one\n")
        // Only the direct reads above reached a member's KV service; none of the refused calls.
        expect(
          (yield* memberMetric("grpc_server_started_total", 'grpc_service="etcdserverpb.KV"')) -
            startedBefore,
        ).toBe(2)
        const refusedAfter = yield* Effect.promise(() =>
          fetch(`${proxy.url}/metrics`).then((r) => r.text()),
        )
        const refused = (text: string) =>
          Number(/etcd_proxy_writes_refused_total\{protocol="grpc"\} (\d+)/.exec(text)![1])
        expect(refused(refusedAfter) - refused(refusedBefore)).toBeGreaterThanOrEqual(5)
      }),
    )

    it.scoped("a refused call is answered in trailers-only form", () =>
      Effect.gen(function* () {
        const proxy = yield* Proxy
        const answer = yield* h2Request(
          proxy.url,
          {
            ":method": "POST",
            ":path": "/etcdserverpb.KV/Put",
            "content-type": "application/grpc",
            te: "trailers",
          },
          grpcFrame(putRequest("/ro/raw", "x")),
        )
        expect(answer.headers[":status"]).toBe(200)
        expect(answer.endedWithHeaders).toBe(true)
        expect(answer.body.length).toBe(0)
        expect(answer.headers["grpc-status"]).toBe("12")
        expect(answer.headers["grpc-message"]).toBe(
          "httpproxy: read-only proxy refuses gRPC /etcdserverpb.KV/Put",
        )
      }),
    )

    it.scoped("HTTP/2 that is not gRPC follows the HTTP rules: a v2 PUT gets 501", () =>
      Effect.gen(function* () {
        const proxy = yield* Proxy
        const answer = yield* h2Request(
          proxy.url,
          { ":method": "PUT", ":path": "/v2/keys/ro/h2?value=x" },
          Buffer.alloc(0),
        )
        expect(answer.headers[":status"]).toBe(501)
        expect(JSON.parse(answer.body.toString())).toEqual({
          message: "httpproxy: read-only proxy refuses PUT /v2/keys/ro/h2",
        })
      }),
    )

    it.scoped("a member's own error status and message come back as the member sent them", () =>
      Effect.gen(function* () {
        const proxy = yield* Proxy
        const cluster = yield* EtcdCluster
        const direct = ["--endpoints", cluster.members[0]!.clientUrl]
        const header = JSON.parse(ok(yield* etcdctl([...direct, "get", "x", "-w", "json"]))) as {
          header: { revision: number }
        }
        ok(yield* etcdctl([...direct, "compaction", String(header.header.revision)]))
        const old = yield* etcdctl(["--endpoints", proxy.url, "get", "/ro/a", "--rev=1"])
        expect(old.code).not.toBe(0)
        expect(old.stderr).toContain("required revision has been compacted")
      }),
    )

    it.scoped(
      "cancellation reaches the member: the client resetting the stream or going away",
      () =>
        Effect.gen(function* () {
          const proxy = yield* Proxy
          yield* eventually(openWatchStreams, 0)
          for (const leave of ["reset", "disconnect"] as const) {
            const session = yield* Effect.acquireRelease(
              Effect.sync(() => http2.connect(proxy.url)),
              (session) => Effect.sync(() => session.destroy()),
            )
            session.on("error", () => {})
            const stream = session.request({
              ":method": "POST",
              ":path": "/etcdserverpb.Watch/Watch",
              "content-type": "application/grpc",
              te: "trailers",
            })
            stream.on("error", () => {})
            yield* eventually(openWatchStreams, 1)
            if (leave === "reset") stream.close(http2.constants.NGHTTP2_CANCEL)
            else session.destroy()
            yield* eventually(openWatchStreams, 0)
          }
        }),
    )

    it.scoped("the npm etcd3 client reads and watches; its put is refused", () =>
      Effect.gen(function* () {
        const proxy = yield* Proxy
        const cluster = yield* EtcdCluster
        const client = yield* Effect.acquireRelease(
          Effect.sync(() => new Etcd3({ hosts: proxy.url, dialTimeout: 3_000 })),
          (client) => Effect.sync(() => client.close()),
        )
        expect(yield* Effect.promise(() => client.get("/ro/b").string())).toBe("two")
        const put = yield* Effect.either(Effect.tryPromise(() => client.put("/ro/npm").value("x")))
        expect(put._tag).toBe("Left")
        expect(String(put._tag === "Left" ? put.left.error : "")).toContain(
          "read-only proxy refuses gRPC /etcdserverpb.KV/Put",
        )

        const seen = yield* firstPut(client, "/ro/npm-watched")
        ok(
          yield* etcdctl([
            "--endpoints",
            cluster.members[1]!.clientUrl,
            "put",
            "/ro/npm-watched",
            "direct",
          ]),
        )
        expect(yield* Effect.promise(() => seen).pipe(Effect.timeout("10 seconds"))).toBe("direct")
      }),
    )

    it.scoped(
      "on SIGTERM watches end with UNAVAILABLE and an unfinished call delays exit boundedly",
      () =>
        Effect.gen(function* () {
          const cluster = yield* EtcdCluster
          const proxy = yield* startProxy({
            args: ["--proxy", "readonly", "--initial-cluster", cluster.initialCluster],
          })
          const session = yield* Effect.acquireRelease(
            Effect.sync(() => http2.connect(proxy.url)),
            (session) => Effect.sync(() => session.destroy()),
          )
          session.on("error", () => {})
          const grpcCall = (path: string) => {
            const stream = session.request({
              ":method": "POST",
              ":path": path,
              "content-type": "application/grpc",
              te: "trailers",
            })
            stream.on("error", () => {})
            return stream
          }
          // A unary call whose request never ends: the member waits for it, and so would a drain.
          grpcCall("/etcdserverpb.KV/Range")
          const watch = grpcCall("/etcdserverpb.Watch/Watch")
          const watchEnd = new Promise<http2.IncomingHttpHeaders>((resolve) =>
            watch.on("response", resolve),
          )
          yield* eventually(openWatchStreams, 1)

          const started = Date.now()
          proxy.child.kill("SIGTERM")
          const ended = yield* Effect.promise(() => watchEnd).pipe(Effect.timeout("3 seconds"))
          expect(ended["grpc-status"]).toBe("14")
          expect(ended["grpc-message"]).toBe("httpproxy: proxy shutting down")
          const code = yield* Effect.promise(() => proxy.exited).pipe(Effect.timeout("9 seconds"))
          expect(code).toBe(0)
          // Held by the unfinished call for the drain bound (5 s), not for ever.
          expect(Date.now() - started).toBeLessThan(8_000)
          yield* eventually(openWatchStreams, 0)
        }),
    )

    describe("documented limitation", () => {
      it.scoped("etcdctl 3.4 endpoint status fails: Node's parser rejects its :authority", () =>
        Effect.gen(function* () {
          const proxy = yield* Proxy
          const status = yield* etcdctl(["--endpoints", proxy.url, "endpoint", "status"])
          expect(status.code).not.toBe(0)
          expect(status.stderr).toContain("PROTOCOL_ERROR")
        }),
      )
    })

    // Last: it leaves the cluster with two members.
    it.scoped("a watch survives the member it was forwarded to being killed", () =>
      Effect.gen(function* () {
        const proxy = yield* Proxy
        const cluster = yield* EtcdCluster
        const config = yield* Effect.promise(() =>
          fetch(`${proxy.url}/v2/config/local/proxy`).then((r) => r.json()),
        )
        const used = (config as { endpoints: Array<string> }).endpoints[0]!
        const victim = cluster.members.findIndex((m) => m.clientUrl === used)
        const survivor = cluster.members[(victim + 1) % cluster.members.length]!.clientUrl
        const watch = yield* spawnEtcdctl(["--endpoints", proxy.url, "watch", "/ro/failover"])
        yield* eventually(openWatchStreams, 1)
        ok(yield* etcdctl(["--endpoints", survivor, "put", "/ro/failover", "before"]))
        yield* watch.waitFor("before")

        yield* Effect.promise(() => cluster.killMember(victim))
        const write = (value: string) => putRetrying(survivor, "/ro/failover", value)
        yield* write("after-1")
        yield* write("after-2")
        yield* watch.waitFor("after-2", 15_000)
        expect(watch.output()).toContain("PUT\n/ro/failover\nafter-1\n")
      }),
    )

    // Last: it kills a second member. The watch is bare HTTP/2, so what the client gets is what
    // the proxy sent (etcdctl retries on an empty status and hid the hang python3-etcd3 showed).
    it.scoped("a watch whose member dies ends with UNAVAILABLE, never without a status", () =>
      Effect.gen(function* () {
        const proxy = yield* Proxy
        const cluster = yield* EtcdCluster
        const config = (yield* Effect.promise(() =>
          fetch(`${proxy.url}/v2/config/local/proxy`).then((r) => r.json()),
        )) as {
          endpoints: Array<string>
          members: Array<{ clientURLs: Array<{ url: string; state: string }> }>
        }
        const available = new Set(
          config.members.flatMap((m) =>
            m.clientURLs.filter((u) => u.state === "available").map((u) => u.url),
          ),
        )
        const used = config.endpoints.find((url) => available.has(url))!
        const victim = cluster.members.findIndex((m) => m.clientUrl === used)
        expect(victim).toBeGreaterThanOrEqual(0)

        const session = http2.connect(proxy.url)
        yield* Effect.addFinalizer(() => Effect.sync(() => session.destroy()))
        session.on("error", () => {})
        const watch = session.request({
          ":method": "POST",
          ":path": "/etcdserverpb.Watch/Watch",
          "content-type": "application/grpc",
          te: "trailers",
        })
        watch.on("error", () => {})
        // WatchRequest { create_request { key: "/ro/dies" } }, the request stream left open.
        const key = Buffer.from("/ro/dies")
        watch.write(
          grpcFrame(Buffer.concat([Buffer.from([0x0a, key.length + 2, 0x0a, key.length]), key])),
        )
        const ending = new Promise<{
          readonly trailers: http2.IncomingHttpHeaders | undefined
          readonly data: number
        }>((resolve) => {
          let trailers: http2.IncomingHttpHeaders | undefined
          let data = 0
          watch.on("data", (chunk: Buffer) => (data += chunk.length))
          watch.on("trailers", (received) => (trailers = received))
          // The answer's end (END_STREAM); the request side stays open, as a client's would.
          watch.on("end", () => resolve({ trailers, data }))
          watch.on("close", () => resolve({ trailers, data }))
        })
        // The member confirmed the watch (its WatchResponse with created = true came back).
        const created = yield* Effect.promise(
          () =>
            new Promise<boolean>((resolve) => {
              watch.once("data", () => resolve(true))
              setTimeout(() => resolve(false), 10_000).unref()
            }),
        )
        expect(created).toBe(true)

        yield* Effect.promise(() => cluster.killMember(victim))
        const ended = yield* Effect.promise(() => ending).pipe(
          Effect.timeoutFail({
            duration: "10 seconds",
            onTimeout: () =>
              new Error("the watch neither ended nor failed 10 s after its member died"),
          }),
        )
        expect(ended.trailers?.["grpc-status"]).toBe("14")
        expect(ended.trailers?.["grpc-message"]).toMatch(/^httpproxy: /)
      }),
    )
  },
)
