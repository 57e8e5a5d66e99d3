/**
 * The attempt and retry policy of the HTTP/1.1 path (SPEC §3.3–3.5, §3.12, §5.5, §5.7): which
 * endpoint a request goes to, what counts as a member failure, and when a request may be sent
 * again. It writes the member's answer to the client as it arrives, passing the member's head and
 * body bytes on unchanged unless something in them must be dropped or framed anew.
 */
import type * as net from "node:net"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { firstEndpoint } from "../../domain/Admission.js"
import { ProxyConfig } from "../../domain/Config.js"
import type { Endpoint } from "../../domain/Endpoints.js"
import {
  EndpointsExhausted,
  SentNotRetried,
  ZeroEndpoints,
  type ProxyRefusal,
} from "../../domain/Errors.js"
import { appendForwardedFor } from "../../domain/Headers.js"
import {
  asChunk,
  lastChunk,
  readResponseHead,
  writeRequestHead,
  writeResponseHead,
  type RequestHead,
} from "../../domain/Http1.js"
import { MemberList } from "../cluster/MemberList.js"
import { Metrics, type DropReason } from "../Metrics.js"
import { failureTag } from "./Http2.js"
import { ProxyIdentity } from "./ProxyIdentity.js"
import {
  PoolFull,
  Upstream,
  type MemberConnection,
  type MemberResponse,
  type ResponseSink,
} from "./Upstream.js"

/** A request body as the client sends it: pieces not yet handed to a member, and whether it ended. */
export class RequestBody {
  pieces: Array<Buffer> = []
  ended: boolean
  received = 0
  /** A piece arrived or the body ended: the forwarding hands it on. */
  onProgress: (() => void) | undefined = undefined

  constructor(ended: boolean) {
    this.ended = ended
  }

  push(piece: Buffer): void {
    this.pieces.push(piece)
    this.received += piece.length
    this.onProgress?.()
  }

  end(): void {
    this.ended = true
    this.onProgress?.()
  }
}

/** One request handed over by the HTTP/1.1 front, and where its answer goes. */
export interface Exchange {
  readonly method: string
  readonly target: string
  readonly head: RequestHead
  /** The client's address, for `X-Forwarded-For`. */
  readonly client: string
  readonly socket: net.Socket
  /** The client speaks HTTP/1.0: no chunked answers, the connection ends each answer. */
  readonly http10: boolean
  /** The client connection stays open after this answer. */
  readonly keepAlive: boolean
  readonly watch: boolean
  /** Extra response header lines the proxy adds (`--cors`), `""` when none. */
  readonly extraLines: string
  readonly started: number
  readonly body: RequestBody
  /** The answer is complete (the front moves on); `close`: the client connection must end now. */
  answered(close: boolean): void
  /** The proxy answers itself; nothing of the member's answer was sent. */
  refuse(refusal: ProxyRefusal): void
  /** The answer cannot be completed: the client connection is closed. */
  cut(): void
  /** Stop or go on reading the client's body while the member is not taking it. */
  pauseBody(): void
  resumeBody(): void
}

/** How a member's answer goes to the client. */
const Framing = {
  /** Head and body bytes as they came. */
  Pass: 0,
  /** A new head, the body bytes as they came. */
  NewHead: 1,
  /** A new head; the decoded body as it is (HTTP/1.0 clients), closing at the end. */
  Unframed: 2,
  /** A new head; the decoded body in chunks (an answer the member ended by closing). */
  Chunked: 3,
} as const
type Framing = (typeof Framing)[keyof typeof Framing]

const hasNoBody = (method: string, status: number): boolean =>
  method === "HEAD" || status === 204 || status === 304 || (status >= 100 && status < 200)

/** Why an attempt was given up before an answer, as logged and counted. */
class AnswerTimeout extends Error {
  readonly code = "AnswerTimeout"
}
class ReadTimeout extends Error {
  readonly code = "ReadTimeout"
}
class WriteTimeout extends Error {
  readonly code = "WriteTimeout"
}
const isDeadline = (error: Error): boolean =>
  error instanceof AnswerTimeout || error instanceof ReadTimeout || error instanceof WriteTimeout

/** A request being forwarded, as its front sees it. */
export interface Forwarding {
  /** Part of the member's answer went to the client already. */
  readonly answering: boolean
  /** The client left: the member connection and everything else the request holds are let go. */
  abort(): void
}

export class Forwarder extends Effect.Service<Forwarder>()("etcd-proxy/Forwarder", {
  scoped: Effect.gen(function* () {
    const config = yield* ProxyConfig
    const members = yield* MemberList
    const metrics = yield* Metrics
    const identity = yield* ProxyIdentity
    const upstream = yield* Upstream
    const answerMs = Duration.toMillis(config.answerTimeout)
    const readMs = Duration.toMillis(config.readTimeout)
    const writeMs = Duration.toMillis(config.writeTimeout)
    const cors = config.cors.length > 0
    let turn = 0

    /** Forwardings with a deadline to watch: answer, read or write timeouts. */
    const timed = new Set<Attempts>()

    class Attempts implements ResponseSink, Forwarding {
      readonly skipBody: boolean
      private readonly retryAfterSend: boolean
      private readonly longPoll: boolean
      private readonly forwardedFor: string
      private readonly available: ReadonlyArray<Endpoint>
      private readonly first: number
      private index = 0
      private tried = 0
      private endpoint: Endpoint | undefined = undefined
      private connection: MemberConnection | undefined = undefined
      private cancelDial: (() => void) | undefined = undefined
      private nonce: string | undefined = undefined
      /** Request bytes went to the current connection. */
      private sent = false
      /** The same endpoint was already tried again on a fresh connection (SPEC §5.5). */
      private freshTried = false
      private framing: Framing = Framing.Pass
      /** The client got a chunked head from a member that then failed: a resend may continue it. */
      private chunkedToClient = false
      private headSent = false
      private sentStatus = 0
      private bodyBytesSent = 0
      /** A long poll sent again after its member failed: the next head is swallowed (SPEC §5.7). */
      private resent = false
      private finished = false
      private waitingForClient = false
      answerBy = 0
      lastRead = 0
      writeBlockedSince = 0

      constructor(private readonly exchange: Exchange) {
        const method = exchange.method
        this.skipBody = method === "HEAD"
        this.retryAfterSend = method === "GET" || method === "HEAD"
        this.longPoll = method === "GET" && exchange.watch
        this.forwardedFor = appendForwardedFor(exchange.head.forwardedFor, exchange.client)
        this.available = members.table().available
        this.first = firstEndpoint(config.balance, this.available.length, turn++)
        if (!exchange.body.ended) exchange.body.onProgress = () => this.sendBody()
      }

      start(): void {
        metrics.request(this.exchange.method)
        if (this.available.length === 0) {
          this.drop("zero_endpoints", new ZeroEndpoints())
          return
        }
        this.next()
      }

      /** The client left: everything this request holds is let go at once (SPEC §3.8, §3.13). */
      abort(): void {
        if (this.finished) return
        metrics.dropped(this.exchange.method, "failed_sending_request")
        this.finish()
        this.connection?.destroy()
        this.connection = undefined
        this.cancelDial?.()
      }

      /** Part of the member's answer went to the client. */
      get answering(): boolean {
        return this.headSent && !this.finished
      }

      private finish(): void {
        this.finished = true
        this.exchange.body.onProgress = undefined
        timed.delete(this)
        if (this.nonce !== undefined) identity.release(this.nonce)
        this.nonce = undefined
        if (this.waitingForClient) this.exchange.socket.off("drain", this.clientDrained)
      }

      private drop(reason: DropReason, refusal: ProxyRefusal): void {
        metrics.dropped(this.exchange.method, reason)
        this.finish()
        if (this.headSent) this.exchange.cut()
        else this.exchange.refuse(refusal)
      }

      /** The next endpoint in order that is still available, or the end of the list. */
      private next(): void {
        if (this.finished) return
        const table = members.table()
        while (this.index < this.available.length) {
          const endpoint = this.available[(this.first + this.index) % this.available.length]!
          this.index += 1
          // Another request may have found it failed meanwhile: no need to find out again.
          if (table.get(endpoint.key)?.state !== "available") continue
          this.tried += 1
          this.freshTried = false
          this.tryEndpoint(endpoint, upstream.idle(endpoint))
          return
        }
        this.drop("failed_getting_response", new EndpointsExhausted({ tried: this.tried }))
      }

      private tryEndpoint(endpoint: Endpoint, idle: MemberConnection | undefined): void {
        this.endpoint = endpoint
        if (idle !== undefined) {
          this.send(idle)
          return
        }
        this.cancelDial = upstream.dial(endpoint, (error, connection) => {
          this.cancelDial = undefined
          if (this.finished) {
            connection?.destroy()
            return
          }
          if (error !== undefined || connection === undefined) {
            // A full pool is the proxy's own limit, not the member's failure.
            if (!(error instanceof PoolFull)) members.markFailed(endpoint, failureTag(error))
            this.next()
            return
          }
          this.send(connection)
        })
      }

      private send(connection: MemberConnection): void {
        const endpoint = this.endpoint!
        const exchange = this.exchange
        this.connection = connection
        connection.bind(this)
        if (this.nonce !== undefined) identity.release(this.nonce)
        const stamp = identity.stamp(endpoint, exchange.head.via)
        this.nonce = stamp.nonce
        const host = endpoint.key.slice(endpoint.key.indexOf("//") + 2)
        const head = writeRequestHead(
          exchange.method,
          exchange.target,
          host,
          exchange.head,
          this.forwardedFor,
          stamp.via,
        )
        this.keptSent = 0
        this.bodyClosed = false
        this.sent = true
        const now = performance.now()
        // Head and the body received so far in one write: one segment for a small request.
        connection.cork()
        this.writeBlockedSince = connection.write(head) ? 0 : now
        this.sendBody()
        connection.uncork()
        this.answerBy = answerMs > 0 && this.retryAfterSend && !exchange.watch ? now + answerMs : 0
        this.lastRead = readMs > 0 ? now : 0
        if (this.answerBy > 0 || this.lastRead > 0 || writeMs > 0) timed.add(this)
      }

      /** Hands the body pieces received so far to the member. */
      private sendBody(): void {
        const connection = this.connection
        if (connection === undefined || this.finished) return
        const body = this.exchange.body
        const chunked = this.exchange.head.chunked
        // A GET or HEAD may be sent again: its (small) body is kept whole for that.
        const keep = this.retryAfterSend
        const pieces = body.pieces
        let ok = true
        for (let i = this.keptSent; i < pieces.length; i++) {
          ok = connection.write(chunked ? asChunk(pieces[i]!) : pieces[i]!)
        }
        if (keep) this.keptSent = pieces.length
        else pieces.length = 0
        if (body.ended && !this.bodyClosed) {
          this.bodyClosed = true
          if (chunked) ok = connection.write(lastChunk)
        }
        if (!ok) {
          if (this.writeBlockedSince === 0) this.writeBlockedSince = performance.now()
          this.exchange.pauseBody()
        }
      }

      private keptSent = 0
      /** The whole body is with the member: the connection can carry another request after. */
      private bodyClosed = false

      drained(): void {
        this.writeBlockedSince = 0
        this.exchange.resumeBody()
      }

      wantsDecoded(response: MemberResponse): boolean {
        const exchange = this.exchange
        const info = readResponseHead(response.headers, cors)
        if (this.resent) {
          // Continue the chunked body the client is reading, whatever this member's framing.
          this.framing = info.chunked ? Framing.Pass : Framing.Chunked
          return !info.chunked
        }
        const bodyless = hasNoBody(exchange.method, response.statusCode)
        const selfFramed = bodyless || info.contentLength !== undefined
        if (selfFramed || (info.chunked && !exchange.http10)) {
          this.framing =
            info.dropSome || cors || exchange.http10 || !exchange.keepAlive
              ? Framing.NewHead
              : Framing.Pass
          this.chunkedToClient = info.chunked && !bodyless
          return false
        }
        this.framing = exchange.http10 ? Framing.Unframed : Framing.Chunked
        return true
      }

      head(
        response: MemberResponse,
        headBytes: Buffer,
        rest: Buffer | undefined,
        whole: Buffer | undefined,
      ): void {
        const exchange = this.exchange
        timed.delete(this)
        this.answerBy = 0
        this.lastRead = readMs > 0 ? performance.now() : 0
        if (this.lastRead > 0 || this.writeBlockedSince > 0) timed.add(this)
        if (this.resent) {
          // The client has the first member's head already: only the same status can continue it.
          if (response.statusCode !== this.sentStatus) {
            this.fail()
            return
          }
          if (rest !== undefined) this.raw(rest)
          return
        }
        metrics.handled(
          exchange.method,
          response.statusCode,
          (performance.now() - exchange.started) / 1_000,
        )
        this.headSent = true
        this.sentStatus = response.statusCode
        if (this.framing === Framing.Pass) {
          this.toClient(
            whole ?? (rest === undefined ? headBytes : Buffer.concat([headBytes, rest])),
          )
          this.bodyBytesSent = rest?.length ?? 0
          return
        }
        const framingLines =
          this.framing === Framing.Chunked ? "Transfer-Encoding: chunked\r\n" : ""
        const connectionLine = exchange.http10
          ? exchange.keepAlive && this.framing !== Framing.Unframed
            ? "Connection: keep-alive\r\n"
            : "Connection: close\r\n"
          : exchange.keepAlive
            ? ""
            : "Connection: close\r\n"
        const newHead = writeResponseHead(
          response.statusCode,
          response.statusMessage,
          response.headers,
          cors,
          this.framing === Framing.NewHead,
          exchange.extraLines + framingLines + connectionLine,
        )
        const socket = exchange.socket
        if (rest === undefined) {
          this.written(socket.write(newHead, "latin1"))
          return
        }
        socket.cork()
        socket.write(newHead, "latin1")
        this.bodyBytesSent += rest.length
        this.written(socket.write(rest))
        socket.uncork()
      }

      raw(bytes: Buffer): void {
        this.bodyBytesSent += bytes.length
        this.toClient(bytes)
      }

      decoded(chunk: Buffer): void {
        this.bodyBytesSent += chunk.length
        if (this.framing === Framing.Chunked) {
          const socket = this.exchange.socket
          socket.cork()
          let ok = true
          for (const piece of asChunk(chunk)) ok = socket.write(piece)
          socket.uncork()
          this.written(ok)
        } else this.toClient(chunk)
      }

      private toClient(bytes: Buffer): void {
        if (this.lastRead > 0) this.lastRead = performance.now()
        this.written(this.exchange.socket.write(bytes))
      }

      /** Backpressure: while the client is not reading, the member's answer is not read either. */
      private written(ok: boolean): void {
        if (ok || this.waitingForClient) return
        this.waitingForClient = true
        this.connection?.pause()
        this.exchange.socket.once("drain", this.clientDrained)
      }

      private readonly clientDrained = (): void => {
        this.waitingForClient = false
        this.connection?.resume()
      }

      complete(): void {
        if (this.framing === Framing.Chunked) this.exchange.socket.write(lastChunk)
        const connection = this.connection
        this.connection = undefined
        this.finish()
        // A member that answered before the whole body was sent expects the rest of it there.
        if (this.bodyClosed) connection?.release()
        else connection?.destroy()
        this.exchange.answered(this.framing === Framing.Unframed || !this.exchange.keepAlive)
      }

      failed(error: Error, answered: boolean): void {
        const endpoint = this.endpoint!
        const connection = this.connection
        this.connection = undefined
        if (this.finished) return
        if (!answered || this.resent) {
          this.failedBeforeAnswer(endpoint, connection, error)
          return
        }
        // A long poll whose member failed before any event reached the client has the same
        // meaning on the next member: sent again, the client sees one answer (SPEC §5.7).
        if (this.longPoll && this.bodyBytesSent === 0 && this.chunkedToClient) {
          members.markFailed(endpoint, failureTag(error))
          this.resent = true
          this.next()
          return
        }
        this.fail()
      }

      private failedBeforeAnswer(
        endpoint: Endpoint,
        connection: MemberConnection | undefined,
        error: Error,
      ): void {
        const reused = connection !== undefined && connection.answers > 0 && !this.freshTried
        if (reused && this.retryAfterSend) {
          // A kept-alive connection the member had closed: not a member failure (SPEC §5.5).
          this.freshTried = true
          this.tryEndpoint(endpoint, undefined)
          return
        }
        // A write on a kept-alive connection that died may have been a stale connection, not a
        // failed member; it cannot be sent again either way. A fresh connection lost after the
        // request went out may be the member refusing that request (SPEC §3.13): its health
        // decides. No answer in time is the member's alone.
        if (!reused) {
          if (this.sent && !isDeadline(error)) members.suspect(endpoint, failureTag(error))
          else members.markFailed(endpoint, failureTag(error))
        }
        if (!this.sent || this.retryAfterSend) {
          this.next()
          return
        }
        this.drop(
          "failed_getting_response",
          new SentNotRetried({ endpoint: endpoint.url, method: this.exchange.method }),
        )
      }

      /** The answer broke off mid-way: the client sees a cut stream, as from a member. */
      private fail(): void {
        this.connection?.destroy()
        this.connection = undefined
        this.finish()
        this.exchange.cut()
      }

      /** Called by the sweep: gives up a connection past one of its deadlines. */
      expire(now: number): void {
        let error: Error | undefined
        if (this.answerBy > 0 && now >= this.answerBy) error = new AnswerTimeout()
        else if (this.lastRead > 0 && now - this.lastRead >= readMs) error = new ReadTimeout()
        else if (
          writeMs > 0 &&
          this.writeBlockedSince > 0 &&
          now - this.writeBlockedSince >= writeMs
        ) {
          error = new WriteTimeout()
        }
        if (error === undefined) return
        timed.delete(this)
        const connection = this.connection
        if (connection === undefined) return
        this.connection = undefined
        connection.destroy()
        if (this.headSent && !this.resent) {
          this.fail()
          return
        }
        // No answer in time: the endpoint counts as failed; a GET or HEAD moves on (SPEC §3.12).
        this.freshTried = true
        this.failedBeforeAnswer(this.endpoint!, connection, error)
      }
    }

    const sweep = setInterval(() => {
      if (timed.size === 0) return
      const now = performance.now()
      for (const forwarding of timed) forwarding.expire(now)
    }, 250)
    sweep.unref()
    yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(sweep)))

    return {
      /** Forwards one admitted request; the returned handle aborts it when the client leaves. */
      forward: (exchange: Exchange): Forwarding => {
        const forwarding = new Attempts(exchange)
        forwarding.start()
        return forwarding
      },
    } as const
  }),
}) {}
