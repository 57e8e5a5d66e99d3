/**
 * Binds every `--listen-client-urls` entry and hands each connection to its protocol, as an etcd
 * member's client port does (SPEC §3.10): HTTP/1.1 to the Http1Front, HTTP/2 to the relay
 * (read-write) or the per-stream gRPC front (read-only). Cleartext connections are told apart
 * by the HTTP/2 preface, TLS ones by ALPN; either way once per connection, never per request.
 */
import * as net from "node:net"
import type { AddressInfo } from "node:net"
import * as tls from "node:tls"
import * as Effect from "effect/Effect"
import { ProxyConfig } from "../../domain/Config.js"
import { StartupError } from "../../domain/Errors.js"
import { framingRefusal } from "../../domain/Http1.js"
import { http1Limits } from "../../domain/Limits.js"
import { MemberList } from "../cluster/MemberList.js"
import { TlsMaterial } from "../TlsMaterial.js"
import { GrpcReadOnly } from "./GrpcReadOnly.js"
import { Http1Front } from "./Http1Front.js"
import { sniffPreface } from "./Http2.js"
import { Http2Relay } from "./Http2Relay.js"
import { ModeGuard } from "./ModeGuard.js"
import { ProxyIdentity } from "./ProxyIdentity.js"

/**
 * ALPN in the server's order of preference: a client that offers both gets HTTP/1.1, which the
 * proxy serves in full whatever the members speak; gRPC clients offer h2 alone and get it.
 */
const alpnProtocols = ["http/1.1", "h2"]

/** `PRI ` that does not go on as the HTTP/2 preface: an HTTP/2 attempt the proxy cannot serve. */
const priMethod = Buffer.from("PRI ", "latin1")

const printable = (url: URL): string => url.href.replace(/\/$/, "")

/**
 * What a client connection may have read ahead of what the proxy took from it: a connection
 * the proxy does not read (pipelining bound, a member slow to take an upload) holds one read
 * beyond this, not Node's default of 64 KiB more.
 */
const readAhead = 16_384

type Handoff = (socket: net.Socket, head: Buffer) => void

export class Listeners extends Effect.Service<Listeners>()("etcd-proxy/Listeners", {
  scoped: Effect.gen(function* () {
    const config = yield* ProxyConfig
    const front = yield* Http1Front
    const tlsMaterial = yield* TlsMaterial
    const members = yield* MemberList
    const guard = yield* ModeGuard
    const identity = yield* ProxyIdentity
    const http2 = guard.mode === "readwrite" ? yield* Http2Relay : yield* GrpcReadOnly

    /** HTTP/2 sessions end with their socket's `close`, which a half-open socket never reaches. */
    const toHttp2: Handoff = (socket, head) => {
      socket.allowHalfOpen = false
      http2.accept(socket, head)
    }

    /** Reads a connection's first bytes until they tell HTTP/2 from HTTP/1.1, then hands it over. */
    const sniff = (socket: net.Socket): void => {
      let head: Buffer | undefined
      const abandon = () => socket.destroy()
      const onData = (chunk: Buffer) => {
        const bytes = head === undefined ? chunk : Buffer.concat([head, chunk])
        const verdict = sniffPreface(bytes)
        if (verdict === "undecided") {
          head = bytes
          return
        }
        // The listeners go, and with them this closure: nothing keeps the first bytes alive.
        head = undefined
        socket.off("data", onData)
        socket.off("error", abandon)
        socket.off("end", abandon)
        socket.off("timeout", abandon)
        socket.setTimeout(0)
        if (verdict === "h2") {
          socket.pause()
          toHttp2(socket, bytes)
          return
        }
        if (bytes.length >= priMethod.length && bytes.compare(priMethod, 0, 4, 0, 4) === 0) {
          // As etcd's Go server does: an HTTP/2 request line that is not the preface.
          socket.end(framingRefusal(505))
          return
        }
        front.accept(socket, bytes)
      }
      socket.on("data", onData)
      socket.on("error", abandon)
      socket.on("end", abandon)
      // An incomplete preface, or nothing at all, does not hold a connection for long.
      socket.setTimeout(http1Limits.sniffMs)
      socket.on("timeout", abandon)
    }

    const onConnection = (socket: net.Socket & { alpnProtocol?: string | false }): void => {
      if (socket.alpnProtocol === "h2") toHttp2(socket, Buffer.alloc(0))
      else if (socket.alpnProtocol === "http/1.1") front.accept(socket, Buffer.alloc(0))
      else sniff(socket)
    }

    const listen = (url: URL) =>
      Effect.acquireRelease(
        Effect.gen(function* () {
          const secure = url.protocol === "https:"
          // Half-open is HTTP/1.1's business: a client that sent FIN may still read its answers.
          const server: net.Server = secure
            ? tls.createServer({
                ...tlsMaterial.server(),
                ALPNProtocols: alpnProtocols,
                allowHalfOpen: true,
                highWaterMark: readAhead,
                handshakeTimeout: http1Limits.sniffMs,
              })
            : net.createServer({ allowHalfOpen: true, noDelay: true, highWaterMark: readAhead })
          server.on(secure ? "secureConnection" : "connection", onConnection)
          // SIGHUP (SPEC §8.7): new handshakes take the reloaded material, open connections keep theirs.
          if (server instanceof tls.Server) {
            tlsMaterial.onReload(() => server.setSecureContext(tlsMaterial.server()!))
          }
          // A failed handshake concerns that client alone; Node destroys its socket.
          server.on("tlsClientError", () => {})
          return yield* Effect.async<net.Server, StartupError>((resume) => {
            const onError = (error: NodeJS.ErrnoException) =>
              resume(
                Effect.fail(
                  new StartupError({
                    message: `cannot listen on ${printable(url)}: ${error.code ?? error.message}`,
                    cause: error,
                  }),
                ),
              )
            server.once("error", onError)
            const host = url.hostname.replace(/^\[|\]$/g, "")
            server.listen({ host, port: Number(url.port), backlog: 1_024 }, () => {
              server.off("error", onError)
              resume(Effect.succeed(server))
            })
          })
        }),
        (server) => Effect.sync(() => server.close()),
      )

    const servers = yield* Effect.forEach(config.listenUrls, listen)

    // Runs before the fronts' own finalizers: stop accepting, drain, then cut what is left.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        yield* Effect.logInfo("shutting down: no new connections")
        for (const server of servers) server.close()
        yield* Effect.all([front.drain, http2.drain], { concurrency: "unbounded" })
        front.closeAll()
        http2.closeAll()
      }),
    )

    const addresses = servers.map((server, i) => {
      const url = new URL(config.listenUrls[i]!.href)
      url.port = String((server.address() as AddressInfo).port)
      return printable(url)
    })
    yield* Effect.logInfo("etcd-proxy listening").pipe(
      Effect.annotateLogs({
        urls: addresses.join(","),
        mode: guard.mode,
        id: identity.proxyId,
        endpoints: members
          .table()
          .available.map((e) => e.url)
          .join(","),
      }),
    )
    return { addresses } as const
  }),
  dependencies: [Http2Relay.Default, GrpcReadOnly.Default],
}) {}
