/**
 * Hostile HTTP/2 clients (SPEC §3.10, §3.13; issue 12) against the built proxy, read-write and
 * read-only side by side, a real 3-member etcd 3.4 behind both: a reader with a zero window, 15
 * connections that end in protocol errors, bytes that make members reset the relayed connection,
 * and more streams than the bound. Each attack stays within fixed bounds, measured on the proxy
 * process: RSS at most +100 MiB over the baseline during it and back within +16 MiB once the
 * attackers left, fds, client and member connections back to the baseline, and a new client's
 * 40 concurrent gRPC calls answered 200 (and OK) meanwhile.
 */
import { randomBytes } from "node:crypto"
import * as http from "node:http"
import * as http2 from "node:http2"
import * as net from "node:net"
import { expect, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { EtcdCluster } from "../support/cluster.js"
import {
  collectFrames,
  flags,
  frame,
  frameTypes,
  grpcRequestBlock,
  literalHeader,
  preface,
  rangeRequest,
  settingsOf,
  type Frame,
} from "../support/h2Raw.js"
import { held, type Held } from "../support/held.js"
import { startProxy, type ProxyProcess } from "../support/proxy.js"
import { eventually } from "../support/wait.js"

/** The bounds of issue 12, in MiB. */
const growthDuring = 100
const growthAfter = 16
/** How long after the attackers left everything must be back. */
const settleMs = 15_000
/** The stream bound: `--max-concurrent-streams`' default. */
const streamBound = 256

const bigKey = "hostile/big"
const smallKey = "hostile/small"

interface Target {
  readonly mode: "readwrite" | "readonly"
  readonly proxy: ProxyProcess
  readonly pid: number
  readonly memberPorts: ReadonlyArray<number>
}

class Targets extends Context.Tag("test/HostileH2Targets")<Targets, ReadonlyArray<Target>>() {}

const heldBy = (target: Target): Held => held(target.pid, target.proxy.port, target.memberPorts)

/** 40 concurrent gRPC Range calls on one new HTTP/2 connection: `:status` and `grpc-status` of each. */
const grpcCalls = (url: string, count: number) =>
  Effect.promise(
    () =>
      new Promise<Array<string>>((resolve) => {
        const session = http2.connect(url)
        session.on("error", () => {})
        const outcomes = Array.from(
          { length: count },
          () =>
            new Promise<string>((done) => {
              const call = session.request({
                ":method": "POST",
                ":path": "/etcdserverpb.KV/Range",
                "content-type": "application/grpc",
                te: "trailers",
              })
              let status = "none"
              let grpcStatus = "none"
              call.on("response", (headers) => {
                status = String(headers[":status"])
                if (headers["grpc-status"] !== undefined)
                  grpcStatus = String(headers["grpc-status"])
              })
              call.on("trailers", (trailers) => (grpcStatus = String(trailers["grpc-status"])))
              call.on("data", () => {})
              call.on("error", (error: NodeJS.ErrnoException) => done(error.code ?? "error"))
              call.on("close", () => done(`${status} grpc-status ${grpcStatus}`))
              call.setTimeout(20_000, () => call.close(http2.constants.NGHTTP2_CANCEL))
              call.end(rangeRequest(smallKey))
            }),
        )
        void Promise.all(outcomes).then((all) => {
          session.destroy()
          resolve(all)
        })
      }),
  )

/** 40 concurrent HTTP/1.1 GETs, each on a new connection: the status of each. */
const http1Gets = (url: string, count: number) =>
  Effect.promise(() =>
    Promise.all(
      Array.from(
        { length: count },
        () =>
          new Promise<string>((done) => {
            const request = http.get(
              `${url}/v2/keys/${smallKey}`,
              { agent: false, timeout: 20_000 },
              (response) => {
                response.resume()
                response.on("end", () => done(String(response.statusCode)))
              },
            )
            request.on("timeout", () => request.destroy(new Error("timeout")))
            request.on("error", (error: NodeJS.ErrnoException) => done(error.code ?? "error"))
          }),
      ),
    ),
  )

/** A new client's 40 concurrent gRPC calls, on the front under attack, are all answered 200 and OK. */
const newClientServed = (target: Target) =>
  Effect.map(grpcCalls(target.proxy.url, 40), (outcomes) =>
    expect(outcomes, `${target.mode}: gRPC calls of a new client`).toEqual(
      Array(40).fill("200 grpc-status 0"),
    ),
  )

const larger = (a: Held, b: Held): Held => ({
  rssMiB: Math.max(a.rssMiB, b.rssMiB),
  fds: Math.max(a.fds, b.fds),
  memberConnections: Math.max(a.memberConnections, b.memberConnections),
  clientConnections: Math.max(a.clientConnections, b.clientConnections),
})

/**
 * Runs one attack on `target` within the bounds: `attack` (in its own scope, closed when the
 * attackers leave) resolves once the attack is in full force; `inForce` checks what it did;
 * then a new client must be served, and after the attackers leave everything the proxy holds
 * must come back. The figures are printed for BENCHMARKS.md.
 */
const withinBounds = <A, E>(
  name: string,
  target: Target,
  attack: Effect.Effect<A, E, Scope.Scope>,
  inForce: (a: A) => Effect.Effect<void, Error>,
) =>
  Effect.gen(function* () {
    // The baseline is a proxy that has served clients on this path before: the first calls'
    // one-time costs (compiled code, the member session, the allocator's arenas) are not the
    // attack's, and they stay after it whatever the attack did.
    yield* newClientServed(target)
    // Connections of earlier clients may take a moment to close: the baseline holds none.
    const before = yield* eventually(
      `${target.mode} ${name}: no client connection before the attack`,
      Effect.sync(() => heldBy(target)),
      (now) => now.clientConnections === 0,
      { timeoutMs: 10_000, intervalMs: 100 },
    )
    let peak = before
    const sampler = yield* Effect.fork(
      Effect.sync(() => {
        peak = larger(peak, heldBy(target))
      }).pipe(Effect.repeat(Schedule.spaced("100 millis"))),
    )
    yield* Effect.scoped(
      Effect.gen(function* () {
        const result = yield* attack
        yield* inForce(result)
        yield* newClientServed(target)
        peak = larger(peak, heldBy(target))
      }),
    )
    const after = yield* eventually(
      `${target.mode} ${name}: the proxy back to its baseline ${JSON.stringify(before)}`,
      Effect.sync(() => heldBy(target)),
      (now) =>
        now.rssMiB <= before.rssMiB + growthAfter &&
        now.fds <= before.fds &&
        now.memberConnections <= before.memberConnections &&
        now.clientConnections <= before.clientConnections,
      { timeoutMs: settleMs, intervalMs: 250 },
    )
    yield* Fiber.interrupt(sampler)
    console.log(`hostile-h2 ${target.mode} ${name}: ${JSON.stringify({ before, peak, after })}`)
    expect(peak.rssMiB, `${target.mode} ${name}: RSS during the attack`).toBeLessThanOrEqual(
      before.rssMiB + growthDuring,
    )
  })

/** Every target, at once unless a member-wide count must tell them apart: each is its own process. */
const onEach = <E, R>(
  run: (target: Target) => Effect.Effect<void, E, R>,
  concurrency: number | "unbounded" = "unbounded",
) =>
  Effect.flatMap(Targets, (targets) => Effect.forEach(targets, run, { concurrency, discard: true }))

/** A raw connection to the proxy, ended with FIN (as most attack scripts leave) with the scope. */
const rawConnection = (target: Target) =>
  Effect.acquireRelease(
    Effect.async<net.Socket>((resume) => {
      const socket = net.connect(target.proxy.port, "127.0.0.1")
      socket.on("error", () => {})
      socket.once("connect", () => resume(Effect.succeed(socket)))
    }),
    (socket) =>
      Effect.promise(async () => {
        socket.end()
        await new Promise((resolve) => setTimeout(resolve, 200))
        socket.destroy()
      }),
  )

const closedOrAfter = (socket: net.Socket, ms: number) =>
  Effect.promise(
    () =>
      new Promise<void>((resolve) => {
        if (socket.destroyed || socket.readableEnded) return resolve()
        const timer = setTimeout(resolve, ms)
        socket.once("close", () => {
          clearTimeout(timer)
          resolve()
        })
      }),
  )

/** The sum over all members of a metric's samples whose line contains every one of `parts`. */
const memberMetric = (name: string, ...parts: ReadonlyArray<string>) =>
  Effect.flatMap(EtcdCluster, (cluster) =>
    Effect.promise(async () => {
      let sum = 0
      for (const member of cluster.members) {
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

const watchStreamsStarted = memberMetric(
  "grpc_server_started_total",
  'grpc_method="Watch"',
  'grpc_service="etcdserverpb.Watch"',
)

// --- the attacks ---------------------------------------------------------------------------

const settingsFrame = frame(frameTypes.settings, 0, 0)

/** The five protocol errors of issue 12, each one connection's whole conversation. */
const protocolErrors: ReadonlyArray<readonly [string, () => Buffer]> = [
  [
    "oversized frame",
    () =>
      Buffer.concat([
        preface,
        settingsFrame,
        frame(frameTypes.headers, flags.endHeaders, 1, Buffer.alloc(100_000)),
      ]),
  ],
  [
    "3,000 open-and-reset streams",
    () => {
      const block = grpcRequestBlock("/etcdserverpb.KV/Range")
      const frames: Array<Buffer> = [preface, settingsFrame]
      for (let i = 0; i < 3_000; i++) {
        const id = 1 + 2 * i
        frames.push(
          frame(frameTypes.headers, flags.endHeaders, id, block),
          frame(frameTypes.rstStream, 0, id, Buffer.from([0, 0, 0, 8])),
        )
      }
      return Buffer.concat(frames)
    },
  ],
  [
    "DATA after END_STREAM",
    () =>
      Buffer.concat([
        preface,
        settingsFrame,
        frame(
          frameTypes.headers,
          flags.endHeaders | flags.endStream,
          1,
          grpcRequestBlock("/etcdserverpb.KV/Range"),
        ),
        frame(frameTypes.data, 0, 1, Buffer.alloc(100)),
        frame(frameTypes.data, flags.endStream, 1, Buffer.alloc(100)),
      ]),
  ],
  [
    "a 200 KB header block",
    () => {
      const fillers = Array.from({ length: 25 }, (_, i) =>
        literalHeader(`x-filler-${i}`, Buffer.alloc(8_000, 0x61)),
      )
      const block = Buffer.concat([grpcRequestBlock("/etcdserverpb.KV/Range"), ...fillers])
      const frames: Array<Buffer> = [preface, settingsFrame]
      for (let at = 0; at < block.length; at += 16_000) {
        const last = at + 16_000 >= block.length
        frames.push(
          frame(
            at === 0 ? frameTypes.headers : frameTypes.continuation,
            last ? flags.endHeaders : 0,
            1,
            block.subarray(at, at + 16_000),
          ),
        )
      }
      return Buffer.concat(frames)
    },
  ],
  [
    "random bytes after the preface",
    () => Buffer.concat([preface, settingsFrame, randomBytes(65_536)]),
  ],
]

/** A client that sets a zero flow-control window, opens 300 Range calls for a 1 MB value and never reads. */
const zeroWindowReader = (target: Target) =>
  Effect.gen(function* () {
    const session = yield* Effect.acquireRelease(
      Effect.sync(() => http2.connect(target.proxy.url, { settings: { initialWindowSize: 0 } })),
      (session) => Effect.sync(() => session.destroy()),
    )
    session.on("error", () => {})
    let answered = 0
    let open = 0
    let mostOpen = 0
    let bodyBytes = 0
    let completed = 0
    for (let i = 0; i < 300; i++) {
      const call = session.request({
        ":method": "POST",
        ":path": "/etcdserverpb.KV/Range",
        "content-type": "application/grpc",
        te: "trailers",
      })
      let answeredThis = false
      call.on("response", () => {
        answeredThis = true
        answered += 1
        open += 1
        mostOpen = Math.max(mostOpen, open)
      })
      call.on("data", (chunk: Buffer) => (bodyBytes += chunk.length))
      call.on("trailers", (trailers) => {
        if (trailers["grpc-status"] === "0") completed += 1
      })
      call.on("error", () => {})
      call.on("close", () => {
        if (answeredThis) open -= 1
      })
      call.end(rangeRequest(bigKey))
    }
    yield* eventually(
      `${target.mode}: ${streamBound} calls answered`,
      Effect.sync(() => answered),
      (n) => n >= streamBound,
    )
    return {
      mostOpen: () => mostOpen,
      bodyBytes: () => bodyBytes,
      completed: () => completed,
      bound: session.remoteSettings.maxConcurrentStreams,
    }
  })

/** Connections that send the preface, an empty SETTINGS and 64 KiB of random bytes (six at once). */
const memberResetters = (target: Target) =>
  Effect.forEach(
    Array.from({ length: 6 }),
    () =>
      Effect.gen(function* () {
        const socket = yield* rawConnection(target)
        socket.on("data", () => {})
        socket.write(Buffer.concat([preface, settingsFrame, randomBytes(65_536)]))
        yield* closedOrAfter(socket, 3_000)
      }),
    { concurrency: "unbounded", discard: true },
  )

/**
 * A raw client that acknowledges the proxy's SETTINGS and then opens 300 Watch streams at once,
 * 44 more than the SETTINGS allow.
 */
const streamFlood = (target: Target) =>
  Effect.gen(function* () {
    const socket = yield* rawConnection(target)
    let closed = false
    socket.once("close", () => (closed = true))
    let onSettings: (settings: Frame) => void = () => {}
    const frames = collectFrames(socket, (received) => {
      if (received.type === frameTypes.settings && (received.flags & flags.ack) === 0) {
        onSettings(received)
      }
    })
    const serverSettings = yield* Effect.async<Frame>((resume) => {
      onSettings = (settings) => resume(Effect.succeed(settings))
      socket.write(Buffer.concat([preface, settingsFrame]))
    })
    socket.write(frame(frameTypes.settings, flags.ack, 0))
    const block = grpcRequestBlock("/etcdserverpb.Watch/Watch")
    const flood = Array.from({ length: 300 }, (_, i) =>
      frame(frameTypes.headers, flags.endHeaders, 1 + 2 * i, block),
    )
    // Give the ACK a moment to arrive first, so that the bound is the one in force.
    yield* Effect.sleep("100 millis")
    socket.write(Buffer.concat(flood))
    const refused = () =>
      frames.filter((f) => f.type === frameTypes.rstStream && f.payload.readUInt32BE(0) === 0x7)
        .length
    yield* eventually(
      `${target.mode}: the flood refused or the connection closed`,
      Effect.sync(() => ({ closed, refused: refused() })),
      (state) => state.closed || state.refused >= 300 - streamBound,
    )
    return { settings: settingsOf(serverSettings), frames, closed }
  })

// --- the suite -----------------------------------------------------------------------------

const environment = Layer.scoped(
  Targets,
  Effect.gen(function* () {
    const cluster = yield* EtcdCluster
    const member = cluster.members[0]!.clientUrl
    yield* Effect.promise(async () => {
      const put = (key: string, value: Buffer) =>
        fetch(`${member}/v3/kv/put`, {
          method: "POST",
          body: JSON.stringify({
            key: Buffer.from(key).toString("base64"),
            value: value.toString("base64"),
          }),
        }).then((r) => expect(r.status).toBe(200))
      await put(bigKey, Buffer.alloc(1 << 20, 0x62))
      await put(smallKey, Buffer.from("small"))
      const v2 = await fetch(`${member}/v2/keys/${smallKey}`, {
        method: "PUT",
        body: new URLSearchParams({ value: "small" }),
      })
      expect(v2.status).toBeLessThan(300)
    })
    const memberPorts = cluster.members.map((m) => Number(new URL(m.clientUrl).port))
    const start = (mode: Target["mode"]) =>
      Effect.map(
        startProxy({
          args: [
            "--proxy",
            mode === "readwrite" ? "on" : "readonly",
            "--initial-cluster",
            cluster.initialCluster,
            // One endpoint order for the whole run: the pooled read-only session stays where it is.
            "--proxy-shuffle-interval",
            "3600000",
          ],
        }),
        (proxy): Target => ({ mode, proxy, pid: proxy.child.pid!, memberPorts }),
      )
    const targets = yield* Effect.all([start("readwrite"), start("readonly")], {
      concurrency: 2,
    })
    // Warm up what a served client leaves behind (the pooled session, the heap) before any baseline.
    yield* Effect.forEach(targets, newClientServed, { concurrency: "unbounded", discard: true })
    return targets
  }),
).pipe(Layer.provideMerge(EtcdCluster.layer({ size: 3 })))

layer(environment, { excludeTestServices: true, timeout: "60 seconds" })(
  "hostile HTTP/2 clients, both modes",
  (it) => {
    it.effect(
      "a reader with a zero window: the streams are bounded and stall, memory stays bounded and returns",
      () =>
        onEach((target) =>
          withinBounds("zero-window reader", target, zeroWindowReader(target), (reader) =>
            Effect.sync(() => {
              expect(reader.bound, target.mode).toBe(streamBound)
              // A loaded member may fail a call (UNAVAILABLE), which lets a queued one start.
              expect(reader.mostOpen(), target.mode).toBeLessThanOrEqual(streamBound)
              // Not one byte of the answers passes a zero window, so none of them completes.
              expect(reader.bodyBytes(), target.mode).toBe(0)
              expect(reader.completed(), target.mode).toBe(0)
            }),
          ),
        ),
      60_000,
    )

    it.effect(
      "15 connections ending in protocol errors are all destroyed, none left in CLOSE_WAIT",
      () =>
        onEach((target) =>
          withinBounds(
            "protocol errors",
            target,
            Effect.forEach(
              protocolErrors.flatMap((attack) => [attack, attack, attack]),
              ([, bytes]) =>
                Effect.gen(function* () {
                  const socket = yield* rawConnection(target)
                  socket.on("data", () => {})
                  socket.write(bytes())
                  yield* closedOrAfter(socket, 1_000)
                }),
              { concurrency: "unbounded", discard: true },
            ),
            () => Effect.void,
          ),
        ),
      60_000,
    )

    it.effect(
      "connections members reset for their bytes cost those clients only: no member is marked failed",
      () =>
        onEach((target) =>
          Effect.gen(function* () {
            yield* withinBounds("member resets", target, memberResetters(target), () => Effect.void)
            const status = yield* Effect.promise(() =>
              fetch(`${target.proxy.url}/v2/config/local/proxy`).then(
                (r) =>
                  r.json() as Promise<{
                    members: Array<{ clientURLs: Array<{ state: string }> }>
                  }>,
              ),
            )
            const states = status.members.flatMap((m) => m.clientURLs.map((u) => u.state))
            expect(states).toEqual(["available", "available", "available"])
            expect(target.proxy.output()).not.toContain("endpoint marked failed")
            // Everyone else is served too, HTTP/1.1 clients included (they got 503 for 5 s before).
            // Last, because the HTTP/1.1 front keeps member connections pooled.
            expect(yield* http1Gets(target.proxy.url, 40)).toEqual(Array(40).fill("200"))
          }),
        ),
      60_000,
    )

    it.effect(
      `more streams than SETTINGS_MAX_CONCURRENT_STREAMS (${streamBound}): refused, never forwarded`,
      () =>
        onEach(
          (target) =>
            Effect.gen(function* () {
              const startedBefore = yield* watchStreamsStarted
              yield* withinBounds("stream flood", target, streamFlood(target), (flood) =>
                Effect.sync(() => {
                  expect(flood.settings.get(0x3)).toBe(streamBound)
                  if (target.mode === "readwrite") {
                    // The relay cannot refuse one stream (HPACK): the connection goes away instead.
                    const goaway = flood.frames.find((f) => f.type === frameTypes.goaway)
                    expect(goaway?.payload.readUInt32BE(0)).toBe(2 * streamBound - 1)
                    expect(goaway?.payload.readUInt32BE(4)).toBe(0xb)
                  }
                }),
              )
              const started = (yield* watchStreamsStarted) - startedBefore
              console.log(
                `hostile-h2 ${target.mode} stream flood: ${started} Watch streams reached members`,
              )
              expect(started).toBeLessThanOrEqual(streamBound)
            }),
          // One mode after the other: the members' count of started streams is shared.
          1,
        ),
      60_000,
    )
  },
)
