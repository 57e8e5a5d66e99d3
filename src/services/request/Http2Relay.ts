/**
 * Read-write HTTP/2 (SPEC §3.10, §3.13): each client connection is relayed whole, byte for byte,
 * to one member chosen by the endpoint order. Only frame headers are read, to bound the streams a
 * client has open (the member's SETTINGS reach the client with MAX_CONCURRENT_STREAMS capped), so
 * whatever a member accepts works (etcdctl 3.4's `endpoint status` sends an `:authority` Node's
 * HTTP/2 parser rejects).
 */
import * as http2 from "node:http2"
import type * as net from "node:net"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Runtime from "effect/Runtime"
import { ProxyConfig } from "../../domain/Config.js"
import { firstEndpoint } from "../../domain/Admission.js"
import {
  EndpointsExhausted,
  Overloaded,
  ZeroEndpoints,
  type ProxyRefusal,
} from "../../domain/Errors.js"
import type { Endpoint } from "../../domain/Endpoints.js"
import { clientAddress } from "../../domain/Headers.js"
import { limits } from "../../domain/Limits.js"
import { isGrpcCall } from "../../domain/Mode.js"
import { MemberList } from "../cluster/MemberList.js"
import { TlsMaterial } from "../TlsMaterial.js"
import { dialMember, readyEvent } from "./dialMember.js"
import { answerRefusal, failureTag } from "./Http2.js"
import { errorCode, goawayFrame, StreamTracker } from "./Http2Frames.js"
import { RequestGate } from "./RequestGate.js"

/** How long a connection the proxy refused may stay open for its first call to get the answer. */
const refusalGrace = 2_000

export class Http2Relay extends Effect.Service<Http2Relay>()("etcd-proxy/Http2Relay", {
  scoped: Effect.gen(function* () {
    const config = yield* ProxyConfig
    const members = yield* MemberList
    const gate = yield* RequestGate
    const tls = yield* TlsMaterial
    const dialMs = Duration.toMillis(config.dialTimeout)
    const runtime = yield* Effect.runtime<never>()

    /** Client sockets of open relays, cut on shutdown. */
    const open = new Set<net.Socket>()
    let turn = 0

    // A connection no member can take still gets an answer its client can show: a local HTTP/2
    // session answers each call with the refusal, then goes away so the client dials again.
    const refusals = new WeakMap<http2.Http2Session, ProxyRefusal>()
    let pendingRefusal: ProxyRefusal | undefined
    const refuser = http2.createServer()
    refuser.on("session", (session) => {
      if (pendingRefusal !== undefined) refusals.set(session, pendingRefusal)
      session.on("error", () => session.destroy())
      // Closed gracefully once the first calls had time for their answer, and destroyed after a
      // second grace whatever state the client left it in (a protocol error included).
      setTimeout(() => session.close(), refusalGrace).unref()
      setTimeout(() => session.destroy(), 2 * refusalGrace).unref()
    })
    refuser.on("stream", (stream, headers) => {
      stream.on("error", () => stream.destroy())
      const refusal = refusals.get(stream.session!)
      const grpc = isGrpcCall(headers[":path"] ?? "", headers["content-type"])
      if (refusal !== undefined) answerRefusal(stream, grpc, refusal)
      stream.session?.close()
    })
    const refuse = (client: net.Socket, head: Buffer, refusal: ProxyRefusal): void => {
      if (client.destroyed) return
      if (head.length > 0) client.unshift(head)
      pendingRefusal = refusal
      refuser.emit("connection", client)
      pendingRefusal = undefined
    }

    /**
     * A client that opened more streams than the SETTINGS it was sent allow: the stream cannot be
     * refused alone (its header block already changed the member's HPACK state), so the connection
     * ends with GOAWAY(ENHANCE_YOUR_CALM) when the bytes sent so far end on a frame boundary, and
     * at once otherwise.
     */
    const endOverLimit = (client: net.Socket, tracker: StreamTracker): void => {
      client.removeAllListeners("data")
      if (!tracker.atMemberFrameBoundary || client.destroyed) {
        client.destroy()
        return
      }
      const goaway = goawayFrame(
        tracker.lastAccepted,
        errorCode.enhanceYourCalm,
        `more than ${tracker.limit} concurrent streams`,
      )
      // Read on (and drop) what the client still sends, so that closing does not reset the
      // connection before the GOAWAY is read; the grace bounds how long that may take.
      client.on("data", () => {})
      client.resume()
      client.end(goaway)
      setTimeout(() => client.destroy(), refusalGrace).unref()
    }

    /**
     * Relays both ways once the member is connected, each direction paused while the other side's
     * socket does not take more (so a client that stops reading stops the member, and the other
     * way round). Either side ending ends both.
     */
    const splice = (
      client: net.Socket,
      upstream: net.Socket,
      endpoint: Endpoint,
      head: Buffer,
      tracker: StreamTracker,
    ) => {
      const closeBoth = () => {
        client.destroy()
        upstream.destroy()
        open.delete(client)
      }
      // The member reset or closed a connection that carried this client's bytes: whatever the
      // cause (often the bytes themselves), it ends this relay only and is no member failure.
      upstream.on("error", (error) =>
        Runtime.runFork(runtime)(
          Effect.logDebug("relayed HTTP/2 connection ended by the member").pipe(
            Effect.annotateLogs({ endpoint: endpoint.url, error: failureTag(error) }),
          ),
        ),
      )
      client.once("close", closeBoth)
      upstream.once("close", closeBoth)
      client.on("data", (chunk: Buffer) => {
        if (!tracker.fromClient(chunk)) {
          upstream.off("close", closeBoth)
          upstream.destroy()
          open.delete(client)
          endOverLimit(client, tracker)
          return
        }
        if (!upstream.write(chunk)) client.pause()
      })
      upstream.on("drain", () => client.resume())
      upstream.on("data", (chunk: Buffer) => {
        const passed = tracker.fromMember(chunk)
        if (passed.length > 0 && !client.write(passed)) upstream.pause()
      })
      client.on("drain", () => upstream.resume())
      if (head.length > 0) upstream.write(head)
      client.resume()
    }

    /** Takes an HTTP/2 connection whose first bytes (`head`, possibly none after ALPN) are read. */
    const accept = (client: net.Socket, head: Buffer): void => {
      client.pause()
      client.setNoDelay(true)
      // The whole connection is admitted once: it carries no request the proxy reads.
      const admission = gate.admit(
        "PRI",
        "*",
        false,
        undefined,
        undefined,
        clientAddress(client.remoteAddress),
      )
      if (admission._tag === "Refuse") {
        refuse(client, head, admission.refusal)
        return
      }
      const tracker = new StreamTracker(config.maxConcurrentStreams)
      if (!tracker.fromClient(head)) {
        client.destroy()
        return
      }
      const available = members.table().available
      if (available.length === 0) {
        refuse(client, head, new ZeroEndpoints())
        return
      }
      // A relayed connection carries no `Via`, so proxies advertised in a ring would relay to
      // each other without end; this bound ends such a chain (its last hop is refused, which
      // closes every hop) and holds whatever members advertise.
      if (open.size >= limits.relays) {
        refuse(client, head, new Overloaded({ limit: limits.relays }))
        return
      }
      open.add(client)
      const first = firstEndpoint(config.balance, available.length, turn++)
      let tried = 0
      let dialling: net.Socket | undefined
      const onClientGone = () => {
        dialling?.destroy()
        open.delete(client)
      }
      client.once("close", onClientGone)
      client.on("error", () => client.destroy())

      const attempt = (): void => {
        if (client.destroyed) return
        if (tried === available.length) {
          client.off("close", onClientGone)
          open.delete(client)
          refuse(client, head, new EndpointsExhausted({ tried }))
          return
        }
        const endpoint = available[(first + tried) % available.length]!
        tried += 1
        const upstream = dialMember(endpoint, "h2", tls.towardsMembers(), dialMs)
        dialling = upstream
        const onDialError = (error: Error) => {
          upstream.off(readyEvent(endpoint), onReady)
          upstream.destroy()
          dialling = undefined
          if (client.destroyed) return
          members.markFailed(endpoint, failureTag(error))
          attempt()
        }
        const onReady = () => {
          upstream.off("error", onDialError)
          dialling = undefined
          if (client.destroyed) {
            upstream.destroy()
            return
          }
          client.off("close", onClientGone)
          splice(client, upstream, endpoint, head, tracker)
        }
        upstream.once("error", onDialError)
        upstream.once(readyEvent(endpoint), onReady)
      }
      attempt()
    }

    const closeAll = (): void => {
      for (const client of open) client.destroy()
      open.clear()
    }
    yield* Effect.addFinalizer(() => Effect.sync(closeAll))

    return {
      accept,
      /** A relay carries opaque bytes: nothing to finish gracefully, it is cut by `closeAll`. */
      drain: Effect.void as Effect.Effect<void>,
      closeAll,
    } as const
  }),
}) {}
