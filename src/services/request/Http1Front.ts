/**
 * The HTTP/1.1 front (SPEC §3, §3.11, §3.13): reads requests off a client connection with Node's
 * own strict parser, admits each through the RequestGate, answers the proxy's own paths and
 * refusals itself and hands the rest to the Forwarder, one request at a time per connection,
 * in order. A connection holds a bounded number of requests; one that leaves takes everything
 * it held with it.
 */
import { STATUS_CODES } from "node:http"
import type * as net from "node:net"
import * as Effect from "effect/Effect"
import { isWatch, type OwnEndpoint } from "../../domain/Admission.js"
import { ProxyConfig } from "../../domain/Config.js"
import {
  BadRequestTarget,
  httpAnswer,
  RequestTooLarge,
  type ProxyRefusal,
} from "../../domain/Errors.js"
import { clientAddress } from "../../domain/Headers.js"
import {
  continueHead,
  framingRefusal,
  headEnd,
  readRequestHead,
  type RequestHead,
} from "../../domain/Http1.js"
import { http1Limits, limits } from "../../domain/Limits.js"
import { MemberList } from "../cluster/MemberList.js"
import { Metrics } from "../Metrics.js"
import { awaitClosed } from "./drain.js"
import { Forwarder, RequestBody, type Exchange as Forwarded, type Forwarding } from "./Forwarder.js"
import { isParseError, makeParser, methodNames, type Parser } from "./llhttp.js"
import { MemoryRelease } from "./MemoryRelease.js"
import { OwnEndpoints } from "./OwnEndpoints.js"
import { RequestGate } from "./RequestGate.js"

type FramingStatus = 400 | 408 | 431 | 505

/** The origin-form target: an absolute-form target keeps its path and query only (SPEC §3.2). */
const originForm = (target: string): string | undefined => {
  if (target.startsWith("/")) return target
  if (!/^https?:\/\//i.test(target) || !URL.canParse(target)) return undefined
  const url = new URL(target)
  return url.pathname + url.search
}

const statusLine = (status: number): string =>
  `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\n`

const emptyBody = new RequestBody(true)
/** The parser slot of the body callback (llhttp copies each piece only while one is set). */
const bodySlot = 3

/** llhttp lets empty lines go before a request line. */
const afterEmptyLines = (bytes: Buffer, from: number): number => {
  let at = from
  while (at < bytes.length && (bytes[at] === 13 || bytes[at] === 10)) at += 1
  return at
}
const noBytes = Buffer.alloc(0)

export class Http1Front extends Effect.Service<Http1Front>()("etcd-proxy/Http1Front", {
  scoped: Effect.gen(function* () {
    const config = yield* ProxyConfig
    const gate = yield* RequestGate
    const forwarder = yield* Forwarder
    const own = yield* OwnEndpoints
    const members = yield* MemberList
    const metrics = yield* Metrics
    const memory = yield* MemoryRelease
    const maxBody = config.maxRequestBytes
    const corsOrigins = new Set(config.cors)

    /** The CORS response header lines for a request's `Origin`, or undefined (SPEC §2 `--cors`). */
    const corsLines = (head: RequestHead): string | undefined => {
      const origin = head.origin
      if (corsOrigins.size === 0 || origin === undefined) return undefined
      if (!corsOrigins.has("*") && !corsOrigins.has(origin)) return undefined
      const allowHeaders = head.corsRequestHeaders ?? "accept, content-type, authorization"
      return (
        `Access-Control-Allow-Origin: ${corsOrigins.has("*") ? "*" : origin}\r\n` +
        "Access-Control-Allow-Methods: POST, GET, OPTIONS, PUT, DELETE\r\n" +
        `Access-Control-Allow-Headers: ${allowHeaders}\r\n`
      )
    }

    const connections = new Set<ClientConnection>()
    let draining = false

    /** One request on a client connection, from its head to the end of its answer. */
    class Exchange implements Forwarded {
      watch = false
      extraLines = ""
      started = 0
      /** Holds an in-flight slot (and a watch count) until its answer ends. */
      private entered = false
      private forwarding: Forwarding | undefined = undefined
      /** Its turn came (admitted, answered or forwarded). */
      begun = false
      done = false
      /** A chunked body grew past `--max-request-bytes` before its turn. */
      oversized = false
      /** The answer is out; what is left of the body is read and dropped. */
      discarding = false
      bodyProgress = performance.now()

      constructor(
        readonly conn: ClientConnection,
        readonly method: string,
        readonly target: string,
        readonly head: RequestHead,
        readonly http10: boolean,
        readonly keepAlive: boolean,
        readonly body: RequestBody,
        /** A request the framing rules refuse: answered with Node's bare status line, then close. */
        readonly framing: FramingStatus | undefined,
        readonly badTarget: string | undefined,
      ) {}

      get socket(): net.Socket {
        return this.conn.socket
      }

      get client(): string {
        return this.conn.address
      }

      /** Its turn has come: the admission decides, then the proxy answers or forwards. */
      start(): void {
        const conn = this.conn
        if (this.framing !== undefined) {
          conn.closeWith(framingRefusal(this.framing))
          return
        }
        if (this.badTarget !== undefined) {
          this.refuse(new BadRequestTarget({ target: this.badTarget }))
          return
        }
        if (this.head.expectOther && !this.http10) {
          // As Node's server: an expectation the proxy cannot meet is 417, nothing forwarded.
          this.answer(
            417,
            `Content-Type: application/json\r\n${corsLines(this.head) ?? ""}`,
            JSON.stringify({ message: "httpproxy: unsupported Expect header" }),
            false,
          )
          return
        }
        if (this.oversized) {
          metrics.dropped(this.method, "failed_sending_request")
          this.refuse(new RequestTooLarge({ limit: maxBody }))
          return
        }
        const admission = gate.admit(
          this.method,
          this.target,
          false,
          this.head.contentLength,
          this.head.via,
          conn.address,
        )
        switch (admission._tag) {
          case "Own":
            this.answerOwn(admission.endpoint)
            return
          case "Preflight": {
            const lines = corsLines(this.head)
            this.answer(lines === undefined ? 403 : 200, lines ?? "", "", false)
            return
          }
          case "Refuse": {
            const refusal = admission.refusal
            if (admission.excludeEndpoint !== undefined) {
              const endpoint = members.table().get(admission.excludeEndpoint)
              if (endpoint !== undefined) members.excludeLoop(endpoint, endpoint.url)
            }
            if (refusal._tag === "WriteForbidden") metrics.refusedWrite("http")
            if (refusal._tag === "RequestTooLarge")
              metrics.dropped(this.method, "failed_sending_request")
            this.refuse(refusal)
            return
          }
          case "Forward":
            break
        }
        if (this.head.expectContinue && !this.http10 && !this.body.ended) {
          conn.socket.write(continueHead, "latin1")
        }
        this.watch = admission.watch
        this.extraLines = corsLines(this.head) ?? ""
        this.started = performance.now()
        this.entered = true
        gate.enter(conn.address)
        if (this.watch) metrics.watchOpened()
        this.forwarding = forwarder.forward(this)
      }

      private answerOwn(endpoint: OwnEndpoint): void {
        void own.answer(endpoint, this.method).then((answer) => {
          if (this.done) return
          let lines = ""
          for (const name in answer.headers) lines += `${name}: ${answer.headers[name]}\r\n`
          this.answer(answer.status, lines, answer.body, false)
        })
      }

      /** An answer the proxy makes itself, in one write. */
      answer(status: number, lines: string, body: string, close: boolean): void {
        const closing = close || !this.keepAlive || this.conn.closing
        const length = Buffer.byteLength(body)
        let head = `${statusLine(status)}${lines}Content-Length: ${length}\r\n`
        if (closing) head += "Connection: close\r\n"
        else if (this.http10) head += "Connection: keep-alive\r\n"
        const out = this.method === "HEAD" || body === "" ? `${head}\r\n` : `${head}\r\n${body}`
        this.conn.socket.write(out, "utf8")
        this.answered(closing)
      }

      refuse(refusal: ProxyRefusal): void {
        const { status, body } = httpAnswer(refusal)
        // A body the client may still be sending is read and dropped, unless it is too large
        // to wait for or the client waits for 100 Continue before sending it.
        const close =
          refusal._tag === "RequestTooLarge" ||
          (!this.body.ended && this.head.expectContinue && !this.http10 && this.body.received === 0)
        this.answer(status, `Content-Type: application/json\r\n${this.extraLines}`, body, close)
      }

      answered(close: boolean): void {
        if (this.done) return
        this.done = true
        this.forwarding = undefined
        this.leave()
        this.conn.finished(this, close)
      }

      cut(): void {
        this.forwarding = undefined
        this.conn.destroy()
      }

      pauseBody(): void {
        this.conn.upstreamBlocked = true
        this.conn.updateReading()
      }

      resumeBody(): void {
        this.conn.upstreamBlocked = false
        this.conn.updateReading()
      }

      /** The client left: the forwarding and every slot this request holds are let go. */
      abandon(): void {
        if (this.done) return
        this.done = true
        const forwarding = this.forwarding
        this.forwarding = undefined
        forwarding?.abort()
        this.leave()
      }

      /**
       * A chunked body grew past `--max-request-bytes` while being forwarded: the member gets an
       * unfinished body (so nothing applies) and the client 413, or a cut answer if one began.
       */
      tooLarge(): void {
        const forwarding = this.forwarding
        this.forwarding = undefined
        const answering = forwarding?.answering === true
        forwarding?.abort()
        if (answering) {
          this.conn.destroy()
          return
        }
        this.refuse(new RequestTooLarge({ limit: maxBody }))
      }

      private leave(): void {
        if (!this.entered) return
        this.entered = false
        gate.leave(this.conn.address)
        if (this.watch) metrics.watchClosed()
      }

      /** Part of a member's answer went to the client already. */
      get answering(): boolean {
        return this.forwarding?.answering === true
      }

      /** A long poll or stream that has not started yet, judged by its target alone. */
      get isWatchLike(): boolean {
        return this.watch || (!this.entered && isWatch(this.method, this.target, false))
      }
    }

    /** One client connection speaking HTTP/1.1. */
    class ClientConnection {
      readonly address: string
      private readonly parser: Parser
      readonly queue: Array<Exchange> = []
      /** The exchange whose request is being read. */
      private reading: Exchange | undefined = undefined
      private headStarted = 0
      private partialHeaders: Array<string> = []
      private partialUrl = ""
      idleSince = performance.now()
      /** No more requests are read: the client ended, or a refusal closes the connection. */
      private stopped = false
      /** After the current answer the connection ends (shutdown). */
      closing = false
      upstreamBlocked = false
      private paused = false
      private lingerUntil = 0
      dead = false
      // Where the parser stands in the bytes read, so that a Content-Length body can be passed on
      // as slices of the Buffers that arrived instead of the parser's copies.
      private chunk: Buffer | undefined = undefined
      /** Offset in `chunk` where the next unparsed message starts; -1 when unknown. */
      private at = 0
      /** Bytes of a head begun in earlier reads. */
      private pendingHead: Array<Buffer> = []
      /** Bytes of the current Content-Length body still to come, taken from the reads. */
      private rawRemaining = 0
      private inMessage = false
      /** Bytes read from the client: a connection that sent much leaves memory to give back. */
      private bytesIn = 0

      constructor(readonly socket: net.Socket) {
        this.address = clientAddress(socket.remoteAddress)
        this.parser = makeParser("request", {
          onMessageBegin: () => {
            this.inMessage = true
            this.headStarted = performance.now()
          },
          onHeaders: (headers, url) => {
            for (const item of headers) this.partialHeaders.push(item)
            this.partialUrl += url
          },
          onHeadersComplete: (major, minor, headers, method, url, _s, _m, _u, keepAlive) => {
            this.headStarted = 0
            const raw = headers ?? this.partialHeaders
            this.partialHeaders = []
            const target = url ?? this.partialUrl
            this.partialUrl = ""
            const bodyStart = this.headEndHere()
            // A number llhttp does not name (none today) cannot be forwarded as some other method.
            const name = method === undefined ? undefined : methodNames[method]
            this.onRequest(major, minor, raw, name ?? "", target, keepAlive)
            // The body bytes of this read go with the head, so that a member gets both at once.
            this.takeBody(bodyStart)
            this.startNext()
            return 0
          },
          onBody: (chunk) => this.onBody(chunk),
          onMessageComplete: () => {
            this.inMessage = false
            // Trailers of a chunked body come through onHeaders: they are dropped here, as Node
            // drops them from what a handler forwards, and must not open the next request's head.
            this.partialHeaders = []
            this.partialUrl = ""
            const exchange = this.reading
            this.reading = undefined
            if (exchange !== undefined && !exchange.body.ended) {
              exchange.body.end()
              if (exchange.done && exchange.discarding) this.finished(exchange, false)
            }
          },
        })
        socket.on("data", (chunk: Buffer) => this.parse(chunk))
        socket.on("end", () => this.onEnd())
        socket.on("error", () => this.destroy())
        socket.on("close", () => this.onClose())
      }

      parse(chunk: Buffer): void {
        if (this.stopped) return
        this.bytesIn += chunk.length
        this.chunk = chunk
        if (this.rawRemaining > 0) {
          // The read starts with more of a Content-Length body.
          const n = Math.min(this.rawRemaining, chunk.length)
          this.rawRemaining -= n
          this.at = n
          this.deliverRaw(chunk.subarray(0, n))
        } else if (!this.inMessage) {
          this.at = 0
          this.pendingHead.length = 0
        } else if (this.at !== -1) this.at = 0
        let data = chunk
        for (;;) {
          const result = this.parser.execute(data)
          if (isParseError(result)) {
            this.refuseFraming(result.code === "HPE_HEADER_OVERFLOW" ? 431 : 400)
            break
          }
          // llhttp stops after a request asking for an upgrade; the proxy ignores the upgrade
          // (the member would too) and reads on.
          if (this.stopped || result <= 0 || result >= data.length) break
          data = data.subarray(result)
          this.at = -1
        }
        // A head that goes on in the next read keeps its bytes here (llhttp bounds its size).
        if (this.inMessage && this.headStarted > 0 && this.at !== -1 && this.at < chunk.length) {
          this.pendingHead.push(chunk.subarray(this.at))
        }
        this.chunk = undefined
        this.updateReading()
      }

      /** Where the head just parsed ends in the current read, or -1 when that is not known. */
      private headEndHere(): number {
        const chunk = this.chunk
        if (chunk === undefined || this.at === -1) return -1
        const start = this.at
        if (this.pendingHead.length === 0) return headEnd(chunk, afterEmptyLines(chunk, start))
        const earlier = Buffer.concat(this.pendingHead)
        this.pendingHead.length = 0
        const joined = Buffer.concat([earlier, chunk.subarray(start)])
        const end = headEnd(joined, afterEmptyLines(joined, 0))
        return end === -1 ? -1 : start + end - earlier.length
      }

      /**
       * Takes the body of the request whose head just ended at `bodyStart`: a Content-Length body
       * as slices of the reads; a chunked one (or one whose place is not known) decoded by the
       * parser, a copy.
       */
      private takeBody(bodyStart: number): void {
        const exchange = this.reading
        const length = exchange?.head.contentLength ?? 0
        if (exchange === undefined || exchange.head.chunked || bodyStart < 0 || length === 0) {
          this.parser[bodySlot] = exchange === undefined ? undefined : this.onBodyCopy
          this.at = exchange === undefined && bodyStart >= 0 ? bodyStart : -1
          return
        }
        this.parser[bodySlot] = undefined
        const chunk = this.chunk!
        const n = Math.min(length, chunk.length - bodyStart)
        this.rawRemaining = length - n
        this.at = bodyStart + n
        if (n > 0) this.deliverRaw(chunk.subarray(bodyStart, bodyStart + n))
      }

      private readonly onBodyCopy = (chunk: Buffer): void => this.onBody(chunk)

      private deliverRaw(piece: Buffer): void {
        this.onBody(piece)
      }

      private onRequest(
        major: number,
        minor: number,
        raw: ReadonlyArray<string>,
        method: string,
        url: string,
        keepAlive: boolean,
      ): void {
        const head = readRequestHead(raw)
        let framing: FramingStatus | undefined
        if (major !== 1) framing = 505
        else if (method === "CONNECT" || method === "" || head.otherCoding) framing = 400
        else if (minor === 1 && !head.hasHost) framing = 400
        const target = originForm(url)
        const hasBody = head.chunked || (head.contentLength ?? 0) > 0
        const exchange = new Exchange(
          this,
          method,
          target ?? url,
          head,
          minor === 0,
          keepAlive && framing === undefined,
          hasBody && framing === undefined ? new RequestBody(false) : emptyBody,
          framing,
          target === undefined ? url : undefined,
        )
        this.queue.push(exchange)
        if (framing !== undefined) this.stopped = true
        else if (hasBody) this.reading = exchange
      }

      private onBody(chunk: Buffer): void {
        const exchange = this.reading
        if (exchange === undefined) return
        exchange.bodyProgress = performance.now()
        if (exchange.body.received + chunk.length > maxBody) {
          // Only a chunked body can grow past the limit here: a declared one is refused unread.
          if (exchange.discarding || exchange.oversized) {
            this.destroy()
            return
          }
          exchange.body.pieces = []
          if (exchange.begun && !exchange.done) {
            exchange.discarding = true
            exchange.tooLarge()
          } else if (exchange.begun) this.destroy()
          else exchange.oversized = true
          return
        }
        if (exchange.discarding || exchange.oversized) {
          exchange.body.received += chunk.length
          return
        }
        exchange.body.push(chunk)
      }

      /** Reads on only while this connection is within its bounds (SPEC §3.13). */
      updateReading(): void {
        if (this.dead || this.lingerUntil > 0) return
        const reading = this.reading
        const pause =
          this.stopped ||
          this.queue.length >= http1Limits.pipelineDepth ||
          this.upstreamBlocked ||
          (reading !== undefined && reading !== this.queue[0])
        if (pause === this.paused) return
        this.paused = pause
        if (pause) this.socket.pause()
        else {
          if (reading !== undefined) reading.bodyProgress = performance.now()
          this.socket.resume()
        }
      }

      private starting = false

      /** Starts the request at the head of the queue; one answered at once lets the next start. */
      private startNext(): void {
        if (this.starting) return
        this.starting = true
        while (!this.dead && this.queue.length > 0 && !this.queue[0]!.begun) {
          const exchange = this.queue[0]!
          exchange.begun = true
          exchange.start()
        }
        this.starting = false
      }

      /** The answer of the exchange at the head of the queue is out. */
      finished(exchange: Exchange, close: boolean): void {
        if (this.dead || this.queue[0] !== exchange) return
        if (close) {
          this.queue.shift()
          this.endAfterAnswer()
          return
        }
        if (!exchange.body.ended) {
          // The rest of its body is read and dropped before the next request can start.
          exchange.discarding = true
          exchange.body.pieces = []
          this.updateReading()
          return
        }
        this.queue.shift()
        if (this.closing || (this.stopped && this.queue.length === 0)) {
          this.endAfterAnswer()
          return
        }
        if (this.queue.length > 0) this.startNext()
        else this.idleSince = performance.now()
        this.updateReading()
      }

      /**
       * Writes a framing refusal (after the answers already due) and closes. A request whose body
       * broke off is abandoned first: its member got an unfinished body, so nothing applies.
       */
      private refuseFraming(status: FramingStatus): void {
        this.stopped = true
        const broken = this.reading
        this.reading = undefined
        if (broken !== undefined) {
          const at = this.queue.indexOf(broken)
          if (at === 0 && broken.answering) {
            this.destroy()
            return
          }
          if (at >= 0) {
            for (const dropped of this.queue.splice(at)) dropped.abandon()
          }
        }
        const framing = new Exchange(
          this,
          "GET",
          "",
          readRequestHead([]),
          false,
          false,
          emptyBody,
          status,
          undefined,
        )
        this.queue.push(framing)
        this.startNext()
      }

      /** Sends the last bytes and closes; what the client still sends is read and dropped a while. */
      closeWith(bytes: string): void {
        this.socket.write(bytes, "latin1")
        this.endAfterAnswer()
      }

      private endAfterAnswer(): void {
        this.stopped = true
        for (const waiting of this.queue) waiting.abandon()
        this.queue.length = 0
        this.reading = undefined
        this.lingerUntil = performance.now() + http1Limits.lingerMs
        this.socket.end()
        // Keep reading (and dropping) so that unread bytes do not turn the close into a reset.
        this.paused = false
        this.socket.resume()
      }

      /**
       * The client sent FIN: nothing more will come. Its watches go, and so does a request whose
       * body it had not finished (it can never complete); other answers finish.
       */
      private onEnd(): void {
        this.stopped = true
        if (
          this.lingerUntil > 0 ||
          this.queue.length === 0 ||
          this.reading !== undefined ||
          this.queue.some((e) => e.isWatchLike)
        ) {
          this.destroy()
          return
        }
        this.updateReading()
      }

      destroy(): void {
        if (this.dead) return
        this.socket.destroy()
        this.onClose()
      }

      private onClose(): void {
        if (this.dead) return
        this.dead = true
        connections.delete(this)
        for (const exchange of this.queue) exchange.abandon()
        this.queue.length = 0
        this.reading = undefined
        const parser = this.parser
        setImmediate(() => parser.close())
        if (this.bytesIn >= limits.http1BurstBytes) memory.burstEnded()
      }

      /** Called every second: idle, slow and stalled connections are closed (SPEC §3.9, §3.13). */
      check(now: number): void {
        if (this.lingerUntil > 0) {
          if (now >= this.lingerUntil) this.destroy()
          return
        }
        if (this.paused) {
          // A connection the proxy does not read cannot see its client leave; an empty write
          // can: a client that closed with answers unread has reset the connection.
          this.socket.write(noBytes)
        }
        if (this.queue.length === 0) {
          if (this.headStarted > 0) {
            if (now - this.headStarted >= http1Limits.headersMs) this.closeWith(framingRefusal(408))
          } else if (now - this.idleSince >= http1Limits.keepAliveMs || draining) this.destroy()
          return
        }
        const reading = this.reading
        if (
          reading !== undefined &&
          !this.paused &&
          reading === this.queue[0] &&
          now - reading.bodyProgress >= http1Limits.bodyStallMs
        ) {
          // An upload that stopped: whatever went to a member stays incomplete, so nothing applies.
          const answeredAlready = reading.done
          reading.abandon()
          if (answeredAlready) this.destroy()
          else this.closeWith(framingRefusal(408))
        }
      }
    }

    const sweep = setInterval(() => {
      const now = performance.now()
      for (const connection of connections) connection.check(now)
    }, 1_000)
    sweep.unref()

    /** Takes a client connection whose first bytes (`head`) were read to tell its protocol. */
    const accept = (socket: net.Socket, head: Buffer): void => {
      socket.setNoDelay(true)
      const connection = new ClientConnection(socket)
      connections.add(connection)
      if (draining) connection.closing = true
      if (head.length > 0) connection.parse(head)
    }

    /**
     * Graceful stop (SPEC §8.5): idle connections and watches are closed at once; other requests
     * may finish within `limits.drain`, each connection closing after its answer.
     */
    const drain = Effect.suspend(() => {
      draining = true
      let held = 0
      for (const connection of [...connections]) {
        const active = connection.queue[0]
        if (active === undefined || active.isWatchLike) connection.destroy()
        else {
          connection.closing = true
          held += 1
        }
      }
      return Effect.logInfo("draining requests").pipe(
        Effect.annotateLogs({ inFlight: held }),
        Effect.zipRight(awaitClosed(connections, (c) => c.socket, limits.drain)),
      )
    })

    const closeAll = (): void => {
      for (const connection of [...connections]) connection.destroy()
    }

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        clearInterval(sweep)
        closeAll()
      }),
    )

    return { accept, drain, closeAll, connections: (): number => connections.size } as const
  }),
}) {}
