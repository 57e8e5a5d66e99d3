/**
 * Read-only HTTP/2 (SPEC §3.10, §4): each stream is classified by ModeGuard; allowed calls are
 * forwarded stream for stream over one pooled HTTP/2 session per endpoint (unary, server and
 * bidirectional streams, trailers, cancellation both ways); refused ones end at once.
 * Plain node:http2 callbacks, no fiber per stream.
 */
import * as http2 from "node:http2"
import type * as net from "node:net"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Runtime from "effect/Runtime"
import { ProxyConfig } from "../../domain/Config.js"
import type { Endpoint, EndpointTable } from "../../domain/Endpoints.js"
import { EndpointsExhausted, ZeroEndpoints } from "../../domain/Errors.js"
import { clientAddress } from "../../domain/Headers.js"
import { limits } from "../../domain/Limits.js"
import { isGrpcCall } from "../../domain/Mode.js"
import { firstEndpoint, type OwnEndpoint } from "../../domain/Admission.js"
import { answerGrpc, answerRefusal, failureTag, grpcStatus, percentEncode } from "./Http2.js"
import { MemberList } from "../cluster/MemberList.js"
import { Metrics } from "../Metrics.js"
import { TlsMaterial } from "../TlsMaterial.js"
import { dialMember } from "./dialMember.js"
import { MemoryRelease } from "./MemoryRelease.js"
import { OwnEndpoints } from "./OwnEndpoints.js"
import { ProxyIdentity } from "./ProxyIdentity.js"
import { RequestGate } from "./RequestGate.js"
import { awaitClosed } from "./drain.js"

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR } = http2.constants
const END_STREAM = http2.constants.NGHTTP2_FLAG_END_STREAM

/** Headers that belong to one HTTP/2 connection (or to HTTP/1), never forwarded. */
const connectionSpecific: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
  "host",
])

/**
 * Small stream windows and a wide connection window (SPEC §3.13): the proxy takes no more of a
 * stream than one window while its reader does not read, whichever side stalls.
 */
const sessionSettings = { enablePush: false, initialWindowSize: limits.http2StreamWindow } as const
const maxSessionMemory = 64

/** One pooled client session to a member. */
interface Upstream {
  readonly session: http2.ClientHttp2Session
  connected: boolean
  /** The connection to the member is gone: streams still open on it failed with it. */
  lost: boolean
  readonly waiting: Array<(error: Error | undefined) => void>
}

/** One call in flight: the client's stream and what it is relayed to. */
interface Call {
  readonly stream: http2.ServerHttp2Stream
  readonly grpc: boolean
  readonly watch: boolean
  upstream: http2.ClientHttp2Stream | undefined
  /** The member's answer ended normally; nothing to fail any more. */
  done: boolean
  /** Trailers to send when the response body has ended. */
  trailers: http2.OutgoingHttpHeaders | undefined
}

export class GrpcReadOnly extends Effect.Service<GrpcReadOnly>()("etcd-proxy/GrpcReadOnly", {
  scoped: Effect.gen(function* () {
    const config = yield* ProxyConfig
    const members = yield* MemberList
    const metrics = yield* Metrics
    const tls = yield* TlsMaterial
    const identity = yield* ProxyIdentity
    const gate = yield* RequestGate
    const own = yield* OwnEndpoints
    const dialMs = Duration.toMillis(config.dialTimeout)
    const runtime = yield* Effect.runtime<never>()
    const memory = yield* MemoryRelease

    // --- pooled sessions to members -----------------------------------------------------
    const upstreams = new Map<string, Upstream>()

    const settle = (upstream: Upstream, error: Error | undefined): void => {
      for (const waiter of upstream.waiting.splice(0)) waiter(error)
    }

    const forget = (key: string, upstream: Upstream): void => {
      if (upstreams.get(key) === upstream) upstreams.delete(key)
    }

    /** Calls `ready` with a connected session to the endpoint, dialling one when there is none. */
    const sessionFor = (
      endpoint: Endpoint,
      ready: (error: Error | undefined, session: http2.ClientHttp2Session) => void,
    ): void => {
      const existing = upstreams.get(endpoint.key)
      if (existing !== undefined && !existing.lost && !existing.session.closed) {
        if (existing.connected) ready(undefined, existing.session)
        else existing.waiting.push((error) => ready(error, existing.session))
        return
      }
      const socket = dialMember(endpoint, "h2", tls.towardsMembers(), dialMs)
      const session = http2.connect(endpoint.key, {
        settings: sessionSettings,
        maxSessionMemory,
        createConnection: () => socket,
      })
      const upstream: Upstream = { session, connected: false, lost: false, waiting: [] }
      upstream.waiting.push((error) => ready(error, session))
      upstreams.set(endpoint.key, upstream)
      socket.once("close", () => {
        upstream.lost = true
        forget(endpoint.key, upstream)
      })
      session.once("connect", () => {
        upstream.connected = true
        session.setLocalWindowSize(limits.http2ConnectionWindow)
        settle(upstream, undefined)
      })
      session.on("error", (error) => {
        forget(endpoint.key, upstream)
        if (!upstream.connected) {
          settle(upstream, error)
          return
        }
        // Only a connection that could not be made counts against the member (SPEC §3.13): an
        // error on a session that carried calls may come from one client's stream. The calls on
        // it end with UNAVAILABLE and the next call dials a fresh session.
        Runtime.runFork(runtime)(
          Effect.logDebug("HTTP/2 session to a member failed").pipe(
            Effect.annotateLogs({ endpoint: endpoint.url, error: failureTag(error) }),
          ),
        )
      })
      session.once("goaway", () => forget(endpoint.key, upstream))
      session.once("close", () => {
        forget(endpoint.key, upstream)
        settle(upstream, new Error(`session to ${endpoint.url} closed before it connected`))
      })
    }

    members.onChange((table: EndpointTable) => {
      for (const [key, upstream] of upstreams) {
        if (table.get(key) === undefined) {
          upstreams.delete(key)
          upstream.session.close()
        }
      }
    })

    // --- the stream path ----------------------------------------------------------------
    const calls = new Set<Call>()
    let turn = 0

    /**
     * A gRPC answer always ends with a status in trailers. A member that dies mid-call ends its
     * stream without one (the session's end reads as the stream's), and a client given no status
     * waits forever (python3-etcd3's watch did): it gets UNAVAILABLE and retries instead.
     */
    const unfinished: http2.OutgoingHttpHeaders = {
      "grpc-status": String(grpcStatus.unavailable),
      "grpc-message": percentEncode("httpproxy: the member ended the call without a status"),
    }

    /** Ends a call whose member went away: the client gets UNAVAILABLE and retries, as gRPC clients do. */
    const failCall = (call: Call, message: string): void => {
      const { stream, upstream } = call
      if (stream.closed || stream.destroyed) return
      if (!stream.headersSent) {
        answerGrpc(stream, grpcStatus.unavailable, message)
        return
      }
      call.trailers = {
        "grpc-status": String(grpcStatus.unavailable),
        "grpc-message": percentEncode(message),
      }
      upstream?.unpipe(stream)
      stream.end()
    }

    const requestHeaders = (
      headers: http2.IncomingHttpHeaders,
      via: string,
    ): http2.OutgoingHttpHeaders => {
      const out: http2.OutgoingHttpHeaders = {}
      for (const name in headers) {
        if (name === ":scheme" || name === "via" || connectionSpecific.has(name)) continue
        out[name] = headers[name]
      }
      out["via"] = via
      return out
    }

    const responseHeaders = (headers: http2.IncomingHttpHeaders): http2.OutgoingHttpHeaders => {
      const out: http2.OutgoingHttpHeaders = {}
      for (const name in headers) {
        if ((name.startsWith(":") && name !== ":status") || connectionSpecific.has(name)) continue
        out[name] = headers[name]
      }
      return out
    }

    /** Relays one call over a connected session to the endpoint. */
    const relay = (
      call: Call,
      headers: http2.IncomingHttpHeaders,
      session: http2.ClientHttp2Session,
      endpoint: Endpoint,
      retry: () => void,
    ): void => {
      const { stream } = call
      if (session.closed || session.destroyed) {
        // The session began closing after it was handed out: the next attempt dials another.
        if (upstreams.get(endpoint.key)?.session === session) upstreams.delete(endpoint.key)
        retry()
        return
      }
      let upstream: http2.ClientHttp2Stream
      const stamp = identity.stamp(endpoint, headers["via"] as string | undefined)
      try {
        upstream = session.request(requestHeaders(headers, stamp.via))
      } catch (error) {
        identity.release(stamp.nonce)
        // Headers Node accepted from the client but will not send (a connection-specific one).
        answerGrpc(
          stream,
          grpcStatus.internal,
          `httpproxy: cannot forward the call: ${String(error)}`,
        )
        return
      }
      call.upstream = upstream
      const lost = (): boolean => upstreams.get(endpoint.key)?.session !== session

      upstream.on("response", (answer, flags) => {
        if (stream.closed || stream.destroyed) return
        if ((flags & END_STREAM) !== 0) {
          call.done = true
          stream.respond(responseHeaders(answer), { endStream: true })
          return
        }
        stream.respond(responseHeaders(answer), { waitForTrailers: true })
        upstream.pipe(stream)
      })
      upstream.on("trailers", (trailers) => {
        call.trailers = responseHeaders(trailers)
      })
      upstream.once("end", () => {
        call.done = true
      })
      upstream.on("error", () => {})
      upstream.once("close", () => {
        identity.release(stamp.nonce)
        if (call.done || stream.closed || stream.destroyed) return
        const code = upstream.rstCode ?? NGHTTP2_NO_ERROR
        if (code !== NGHTTP2_NO_ERROR && !lost()) {
          // The member reset this stream and kept the connection: the reset is the answer.
          stream.close(code)
          return
        }
        failCall(call, `httpproxy: ${endpoint.url} failed during the call`)
      })
      stream.pipe(upstream)
    }

    const forward = (call: Call, headers: http2.IncomingHttpHeaders, grpc: boolean): void => {
      const available = members.table().available
      if (available.length === 0) {
        answerRefusal(call.stream, grpc, new ZeroEndpoints())
        return
      }
      const first = firstEndpoint(config.balance, available.length, turn++)
      let tried = 0
      const attempt = (): void => {
        const { stream } = call
        if (stream.closed || stream.destroyed) return
        if (tried === available.length) {
          answerRefusal(stream, grpc, new EndpointsExhausted({ tried }))
          return
        }
        const endpoint = available[(first + tried) % available.length]!
        tried += 1
        sessionFor(endpoint, (error, session) => {
          if (error !== undefined) {
            members.markFailed(endpoint, failureTag(error))
            attempt()
            return
          }
          if (stream.closed || stream.destroyed) return
          relay(call, headers, session, endpoint, attempt)
        })
      }
      attempt()
    }

    const answerOwn = (stream: http2.ServerHttp2Stream, endpoint: OwnEndpoint, method: string) =>
      void own.answer(endpoint, method).then((answer) => {
        if (stream.destroyed || stream.closed) return
        stream.respond({
          ":status": answer.status,
          ...answer.headers,
          "content-length": Buffer.byteLength(answer.body),
        })
        stream.end(method === "HEAD" ? undefined : answer.body)
      })

    const onStream = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
      stream.on("error", () => {})
      // Reset by the client in the same read that opened it (a rapid-reset flood): nothing to do.
      if (stream.closed || stream.destroyed) return
      const method = headers[":method"] ?? "GET"
      const target = headers[":path"] ?? ""
      const contentType = headers["content-type"]
      const grpc = isGrpcCall(target, contentType)
      const client = clientAddress(stream.session?.socket?.remoteAddress)
      const length = headers["content-length"]
      const admission = gate.admit(
        method,
        target,
        grpc,
        length === undefined ? undefined : Number(length),
        headers["via"] as string | undefined,
        client,
      )
      switch (admission._tag) {
        case "Own":
          return answerOwn(stream, admission.endpoint, method)
        case "Preflight":
          // The HTTP/1.1 front answers CORS pre-flights; over HTTP/2 a member does.
          break
        case "Refuse": {
          const refusal = admission.refusal
          if (admission.excludeEndpoint !== undefined) {
            const endpoint = members.table().get(admission.excludeEndpoint)
            if (endpoint !== undefined) members.excludeLoop(endpoint, endpoint.url)
          }
          if (refusal._tag === "WriteForbidden") metrics.refusedWrite(grpc ? "grpc" : "http")
          answerRefusal(stream, grpc, refusal)
          return
        }
      }

      const call: Call = {
        stream,
        grpc,
        watch: admission._tag === "Forward" && admission.watch,
        upstream: undefined,
        done: false,
        trailers: undefined,
      }
      calls.add(call)
      gate.enter(client)
      if (call.watch) metrics.watchOpened()
      stream.on("wantTrailers", () =>
        stream.sendTrailers(call.trailers ?? (call.grpc ? unfinished : {})),
      )
      stream.once("close", () => {
        calls.delete(call)
        gate.leave(client)
        if (call.watch) metrics.watchClosed()
        const upstream = call.upstream
        if (upstream !== undefined && !upstream.closed) upstream.close(NGHTTP2_CANCEL)
      })
      forward(call, headers, grpc)
    }

    // --- client connections -------------------------------------------------------------
    const server = http2.createServer({
      settings: { ...sessionSettings, maxConcurrentStreams: config.maxConcurrentStreams },
      maxSessionMemory,
    })
    const sessions = new Set<http2.ServerHttp2Session>()
    const probeMs = Duration.toMillis(limits.http2IdleProbe)

    /**
     * A silent connection is pinged; no answer within `probeMs` destroys it. Node 20 stops
     * reading a connection after a protocol error and tells nobody, so its socket would stay in
     * CLOSE_WAIT after the client left; any dead peer goes the same way.
     */
    const probe = (session: http2.ServerHttp2Session): void => {
      if (session.destroyed) return
      const deadline = setTimeout(() => session.destroy(), probeMs)
      deadline.unref()
      try {
        session.ping((error) => {
          if (error !== null || session.destroyed) return
          clearTimeout(deadline)
          session.setTimeout(probeMs)
        })
      } catch {
        session.destroy()
      }
    }

    server.on("session", (session) => {
      sessions.add(session)
      let streams = 0
      session.on("stream", () => (streams += 1))
      session.once("close", () => {
        sessions.delete(session)
        if (streams >= limits.http2BurstStreams) memory.burstEnded()
      })
      session.on("error", () => session.destroy())
      session.once("connect", () => session.setLocalWindowSize(limits.http2ConnectionWindow))
      session.setTimeout(probeMs)
      session.on("timeout", () => probe(session))
    })
    server.on("stream", onStream)
    // A TLS client that negotiated no protocol but sent the preface: not something to guess at.
    server.on("unknownProtocol", (socket: net.Socket) => socket.destroy())

    /** Takes an HTTP/2 connection whose first bytes (`head`, possibly none after ALPN) are read. */
    const accept = (client: net.Socket, head: Buffer): void => {
      // Node's session reads bytes already buffered on the socket before new ones (nodejs#35475).
      if (head.length > 0) client.unshift(head)
      server.emit("connection", client)
    }

    const closeAll = (): void => {
      for (const session of sessions) session.destroy()
      for (const upstream of upstreams.values()) upstream.session.destroy()
      upstreams.clear()
    }

    /** Graceful stop (SPEC §8.5): no new calls, watches end with UNAVAILABLE, the rest may finish. */
    const drain = Effect.gen(function* () {
      for (const session of sessions) session.close()
      for (const call of calls) if (call.watch) failCall(call, "httpproxy: proxy shutting down")
      yield* awaitClosed(calls, (call) => call.stream, limits.drain)
    })

    yield* Effect.addFinalizer(() => Effect.sync(closeAll))

    return {
      accept,
      drain,
      closeAll,
    } as const
  }),
}) {}
