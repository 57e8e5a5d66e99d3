/**
 * Member connections for the HTTP/1.1 path (SPEC §3.12, §5.5): keep-alive sockets of our own,
 * pooled per endpoint, each with a strict response parser. A connection carries one request at
 * a time and goes back to its pool only after a complete answer.
 */
import type * as net from "node:net"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { ProxyConfig } from "../../domain/Config.js"
import type { Endpoint, EndpointTable } from "../../domain/Endpoints.js"
import { headEnd } from "../../domain/Http1.js"
import { limits } from "../../domain/Limits.js"
import { MemberList } from "../cluster/MemberList.js"
import { Metrics } from "../Metrics.js"
import { TlsMaterial } from "../TlsMaterial.js"
import { dialMember, readyEvent } from "./dialMember.js"
import { isParseError, makeParser, type Parser } from "./llhttp.js"

/** A member's answer, as the connection reads it. */
export interface ResponseSink {
  /** A response to HEAD: its body is skipped whatever its head declares. */
  readonly skipBody: boolean
  /**
   * Called as soon as the final head is parsed, before anything is delivered: whether the body
   * should arrive decoded (chunk framing removed) rather than as the bytes on the wire.
   */
  wantsDecoded(response: MemberResponse): boolean
  /**
   * The final response head. `headBytes` are its exact bytes; `rest` the wire bytes that
   * followed it in the same read (raw mode only); `whole` is the read itself when the head starts
   * it, so head and body can go on as that one Buffer.
   */
  head(
    response: MemberResponse,
    headBytes: Buffer,
    rest: Buffer | undefined,
    whole: Buffer | undefined,
  ): void
  /** Body bytes as they came on the wire, chunk framing included (raw mode). */
  raw(bytes: Buffer): void
  /** A piece of the decoded body (decoded mode). */
  decoded(chunk: Buffer): void
  /** The answer is complete. */
  complete(): void
  /** The connection failed or the member broke HTTP; `answered` says if a head had arrived. */
  failed(error: Error, answered: boolean): void
  /** The member can take more request bytes again. */
  drained(): void
}

export interface MemberResponse {
  readonly statusCode: number
  readonly statusMessage: string
  readonly headers: ReadonlyArray<string>
  /** The member keeps the connection open after this answer. */
  readonly keepAlive: boolean
}

/** The member broke HTTP/1.1 framing in its answer. */
export class BadAnswer extends Error {
  readonly code = "BadAnswer"
  constructor(
    readonly endpoint: string,
    readonly reason: string,
  ) {
    super(`${endpoint} sent a malformed answer: ${reason}`)
  }
}

/** The member closed the connection before its answer was complete. */
export class ConnectionClosed extends Error {
  readonly code = "ECONNCLOSED"
  constructor(readonly endpoint: string) {
    super(`${endpoint} closed the connection before its answer was complete`)
  }
}

/** The proxy's own bound on connections to one endpoint is reached. */
export class PoolFull extends Error {
  readonly code = "PoolFull"
}

const emptyHeaders: ReadonlyArray<string> = []
const bodySlot = 3

/** One keep-alive connection to a member. */
export class MemberConnection {
  /** Answers completed on this connection: more than zero means it came from the pool. */
  answers = 0
  idleSince = 0
  private sink: ResponseSink | undefined = undefined
  private readonly parser: Parser
  private blocked = false
  private lost = false
  // The answer being read.
  private answered = false
  private done = false
  private interim = false
  private trailing = false
  private pendingHead: Buffer | undefined = undefined
  private partialHeaders: Array<string> = []
  private chunk: Buffer | undefined = undefined
  private consumed = 0
  private response: MemberResponse | undefined = undefined
  private headBytes: Buffer | undefined = undefined
  private decodedMode = false
  private pieces: Array<Buffer> = []

  constructor(
    readonly endpoint: Endpoint,
    readonly socket: net.Socket,
    private readonly pool: Pool,
  ) {
    this.parser = makeParser("response", {
      onMessageBegin: () => {
        if (this.done) this.trailing = true
      },
      onHeaders: (headers) => {
        this.partialHeaders = this.partialHeaders.concat(headers)
      },
      onHeadersComplete: (_ma, _mi, headers, _m, _u, statusCode, statusMessage, _up, keepAlive) => {
        const all = headers ?? this.partialHeaders
        this.partialHeaders = []
        return this.onHeadersComplete(statusCode ?? 0, statusMessage ?? "", all, keepAlive)
      },
      onBody: (chunk) => {
        this.pieces.push(chunk)
      },
      onMessageComplete: () => {
        // Trailers of a chunked answer come through onHeaders; they went on in the raw bytes or
        // are dropped with the decoded body, and must not join the next answer's head.
        this.partialHeaders = []
        if (this.interim) this.interim = false
        else this.done = true
      },
    })
    // The decoded body is a copy made by the parser: asked for only when a client needs it.
    this.parser[bodySlot] = undefined
    socket.on("data", (chunk: Buffer) => this.onData(chunk))
    socket.on("end", () => this.onEnd())
    socket.on("error", (error) => this.fail(error))
    socket.on("close", () => {
      this.fail(new ConnectionClosed(this.endpoint.url))
      setImmediate(() => this.parser.close())
    })
    socket.on("drain", () => {
      this.blocked = false
      this.sink?.drained()
    })
  }

  /** Binds the connection to one request's answer. */
  bind(sink: ResponseSink): void {
    this.sink = sink
    this.answered = false
    this.done = false
    this.interim = false
    this.trailing = false
    this.pendingHead = undefined
    this.response = undefined
    this.headBytes = undefined
    this.decodedMode = false
    this.parser[bodySlot] = undefined
  }

  /** Writes request bytes; false when the member is not taking them (backpressure). */
  write(data: string | Buffer | ReadonlyArray<Buffer>): boolean {
    if (!this.usable) return false
    let ok: boolean
    if (typeof data === "string") ok = this.socket.write(data, "latin1")
    else if (Buffer.isBuffer(data)) ok = this.socket.write(data)
    else {
      this.socket.cork()
      ok = true
      for (const piece of data) ok = this.socket.write(piece)
      this.socket.uncork()
    }
    if (!ok) this.blocked = true
    return ok
  }

  /** Holds writes back until `uncork`, so that head and body leave in one system call. */
  cork(): void {
    this.socket.cork()
  }

  uncork(): void {
    this.socket.uncork()
  }

  /** Request bytes are waiting for the member to take them. */
  get writeBlocked(): boolean {
    return this.blocked
  }

  get usable(): boolean {
    return !this.lost && !this.socket.destroyed && !this.socket.readableEnded
  }

  /** Stops reading the member's answer while the client is not taking it. */
  pause(): void {
    this.socket.pause()
  }

  resume(): void {
    this.socket.resume()
  }

  /** The request is over: a complete, reusable connection goes back to its pool, any other is closed. */
  release(): void {
    const reusable = this.done && !this.trailing && this.response?.keepAlive === true && this.usable
    this.sink = undefined
    if (!reusable) {
      this.destroy()
      return
    }
    this.answers += 1
    this.socket.resume()
    this.pool.giveBack(this)
  }

  destroy(): void {
    this.sink = undefined
    this.lost = true
    this.pool.forget(this)
    this.socket.destroy()
  }

  private onHeadersComplete(
    statusCode: number,
    statusMessage: string,
    headers: ReadonlyArray<string>,
    keepAlive: boolean,
  ): number {
    const chunk = this.chunk!
    // llhttp requires CRLF line ends, so this head ends at the first empty line from here.
    let end: number
    if (this.pendingHead === undefined) end = headEnd(chunk, this.consumed)
    else {
      const joined = Buffer.concat([this.pendingHead, chunk.subarray(this.consumed)])
      const at = headEnd(joined, 0)
      end = at === -1 ? -1 : at - this.pendingHead.length + this.consumed
    }
    if (end === -1) {
      this.trailing = true
      return 0
    }
    if (statusCode < 200 && statusCode !== 101) {
      // Interim answers (100 Continue) are between the proxy and the member.
      this.interim = true
      this.pendingHead = undefined
      this.consumed = end
      return 0
    }
    this.headBytes =
      this.pendingHead === undefined
        ? chunk.subarray(this.consumed, end)
        : Buffer.concat([this.pendingHead, chunk.subarray(this.consumed, end)])
    this.pendingHead = undefined
    this.consumed = end
    this.answered = true
    this.response = { statusCode, statusMessage, headers: headers ?? emptyHeaders, keepAlive }
    if (this.sink?.wantsDecoded(this.response) === true) {
      this.decodedMode = true
      this.parser[bodySlot] = this.onBodySlot
    }
    return this.sink?.skipBody === true ? 1 : 0
  }

  private readonly onBodySlot = (chunk: Buffer): void => {
    this.pieces.push(chunk)
  }

  private onData(chunk: Buffer): void {
    const sink = this.sink
    if (sink === undefined || this.done) {
      // Bytes with no request outstanding: the member broke the protocol; never reuse it.
      this.destroy()
      return
    }
    const wasAnswered = this.answered
    this.chunk = chunk
    this.consumed = 0
    const result = this.parser.execute(chunk)
    this.chunk = undefined
    if (isParseError(result) || this.trailing) {
      const reason = isParseError(result) ? result.reason : "bytes after the end of the answer"
      this.pieces.length = 0
      this.fail(new BadAnswer(this.endpoint.url, reason))
      return
    }
    if (!this.answered) {
      // The head is still incomplete: keep its bytes (llhttp bounds a head's size).
      const rest = chunk.subarray(this.consumed)
      this.pendingHead =
        this.pendingHead === undefined ? rest : Buffer.concat([this.pendingHead, rest])
      return
    }
    if (!wasAnswered) {
      const headBytes = this.headBytes!
      const rest =
        this.decodedMode || this.consumed >= chunk.length
          ? undefined
          : chunk.subarray(this.consumed)
      const whole =
        headBytes.buffer === chunk.buffer && headBytes.byteOffset === chunk.byteOffset
          ? chunk
          : undefined
      sink.head(this.response!, headBytes, rest, whole)
    } else if (!this.decodedMode) {
      sink.raw(chunk)
    }
    if (this.decodedMode && this.pieces.length > 0) {
      const pieces = this.pieces
      this.pieces = []
      for (const piece of pieces) if (this.sink === sink) sink.decoded(piece)
    }
    if (this.done && this.sink === sink) sink.complete()
  }

  private onEnd(): void {
    const sink = this.sink
    if (sink === undefined) {
      this.destroy()
      return
    }
    if (this.answered && !this.done) {
      // An answer framed by the end of the connection ends here.
      const result = this.parser.finish()
      if (!isParseError(result) && this.done) {
        sink.complete()
        return
      }
    }
    if (!this.done) this.fail(new ConnectionClosed(this.endpoint.url))
  }

  private fail(error: Error): void {
    if (this.lost && this.sink === undefined) return
    const sink = this.sink
    const answered = this.answered
    const done = this.done
    this.sink = undefined
    this.lost = true
    this.pool.forget(this)
    this.socket.destroy()
    if (sink !== undefined && !done) sink.failed(error, answered)
  }
}

/** The connections to one endpoint: idle ones newest first, and a count of all. */
class Pool {
  readonly idle: Array<MemberConnection> = []
  size = 0

  constructor(readonly key: string) {}

  giveBack(connection: MemberConnection): void {
    if (this.idle.length >= limits.idleConnectionsPerEndpoint) {
      connection.destroy()
      return
    }
    connection.idleSince = performance.now()
    this.idle.push(connection)
  }

  forget(connection: MemberConnection): void {
    const at = this.idle.indexOf(connection)
    if (at !== -1) this.idle.splice(at, 1)
  }
}

/** How long an idle member connection is kept for the next request. */
const idleTimeoutMs = 30_000

export type Dialled = (error: Error | undefined, connection: MemberConnection | undefined) => void

export class Upstream extends Effect.Service<Upstream>()("etcd-proxy/Upstream", {
  scoped: Effect.gen(function* () {
    const config = yield* ProxyConfig
    const members = yield* MemberList
    const tlsMaterial = yield* TlsMaterial
    const metrics = yield* Metrics
    const dialMs = Duration.toMillis(config.dialTimeout)
    const pools = new Map<string, Pool>()

    const poolFor = (key: string): Pool => {
      let pool = pools.get(key)
      if (pool === undefined) {
        pool = new Pool(key)
        pools.set(key, pool)
      }
      return pool
    }

    /** An idle connection to the endpoint, newest first, or none. */
    const idle = (endpoint: Endpoint): MemberConnection | undefined => {
      const pool = pools.get(endpoint.key)
      if (pool === undefined) return undefined
      while (pool.idle.length > 0) {
        const connection = pool.idle.pop()!
        if (connection.usable) return connection
        connection.destroy()
      }
      return undefined
    }

    /**
     * Opens a new connection; `done` gets it once TCP (and TLS) are up within the dial timeout,
     * or the error. Returns a cancel function for a client that leaves meanwhile.
     */
    const dial = (endpoint: Endpoint, done: Dialled): (() => void) => {
      const pool = poolFor(endpoint.key)
      if (pool.size >= limits.connectionsPerEndpoint) {
        done(
          new PoolFull(`${endpoint.url}: ${limits.connectionsPerEndpoint} connections open`),
          undefined,
        )
        return () => {}
      }
      const socket = dialMember(endpoint, "http/1.1", tlsMaterial.towardsMembers(), dialMs)
      pool.size += 1
      socket.once("close", () => {
        pool.size -= 1
      })
      let settled = false
      const settle = (error: Error | undefined) => {
        if (settled) return
        settled = true
        socket.off("error", onError)
        if (error !== undefined) {
          socket.destroy()
          done(error, undefined)
          return
        }
        done(undefined, new MemberConnection(endpoint, socket, pool))
      }
      const onError = (error: Error) => settle(error)
      socket.once("error", onError)
      socket.once(readyEvent(endpoint), () => settle(undefined))
      return () => {
        if (settled) return
        settled = true
        socket.destroy()
      }
    }

    metrics.countMemberConnections(() => {
      let busy = 0
      let idle = 0
      for (const pool of pools.values()) {
        idle += pool.idle.length
        busy += pool.size - pool.idle.length
      }
      return { busy, idle }
    })

    const sweep = setInterval(() => {
      const now = performance.now()
      for (const pool of pools.values()) {
        while (pool.idle.length > 0 && now - pool.idle[0]!.idleSince > idleTimeoutMs) {
          pool.idle[0]!.destroy()
        }
      }
    }, 1_000)
    sweep.unref()

    members.onChange((table: EndpointTable) => {
      for (const [key, pool] of pools) {
        if (table.get(key) !== undefined) continue
        pools.delete(key)
        for (const connection of [...pool.idle]) connection.destroy()
      }
    })

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        clearInterval(sweep)
        for (const pool of pools.values()) for (const c of [...pool.idle]) c.destroy()
        pools.clear()
      }),
    )

    return { idle, dial } as const
  }),
}) {}
