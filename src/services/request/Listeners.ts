/**
 * Binds every `--listen-client-urls` entry and hands each connection to its protocol, as an etcd
 * member's client port does (SPEC §3.10): HTTP/1.1 to the Forwarder, HTTP/2 to the relay
 * (read-write) or the per-stream gRPC front (read-only). Cleartext connections are told apart
 * by the HTTP/2 preface, TLS ones by ALPN; either way once per connection, never per request.
 */
import * as http from "node:http"
import * as https from "node:https"
import type * as net from "node:net"
import type { AddressInfo } from "node:net"
import * as Effect from "effect/Effect"
import { ProxyConfig } from "../../domain/Config.js"
import { StartupError } from "../../domain/Errors.js"
import { Forwarder } from "./Forwarder.js"
import { GrpcReadOnly } from "./GrpcReadOnly.js"
import { sniffPreface } from "./Http2.js"
import { Http2Relay } from "./Http2Relay.js"
import { MemberList } from "../cluster/MemberList.js"
import { ModeGuard } from "./ModeGuard.js"
import { ProxyIdentity } from "./ProxyIdentity.js"
import { TlsMaterial } from "../TlsMaterial.js"

const serverOptions: http.ServerOptions = {
  // A watch may stay open for hours (SPEC §3.9); slow or idle clients are bounded by these two.
  requestTimeout: 0,
  headersTimeout: 60_000,
  keepAliveTimeout: 5_000,
  noDelay: true,
}

/**
 * ALPN in the server's order of preference: a client that offers both gets HTTP/1.1, which the
 * Forwarder serves in full whatever the members speak; gRPC clients offer h2 alone and get it.
 */
const alpnProtocols = ["http/1.1", "h2"]

/** How long a new connection may take to send enough bytes to tell its protocol. */
const sniffTimeout = serverOptions.headersTimeout!

const printable = (url: URL): string => url.href.replace(/\/$/, "")

type Handoff = (socket: net.Socket) => void
type Http2Handoff = (socket: net.Socket, head: Buffer) => void

/**
 * node:http accepts half-open connections; HTTP/2 sessions end with their socket's `close`,
 * which a half-open socket never reaches when the client goes away.
 */
const asHttp2 =
  (h2: Http2Handoff): Http2Handoff =>
  (socket, head) => {
    socket.allowHalfOpen = false
    h2(socket, head)
  }

/** Reads a connection's first bytes until they tell HTTP/2 from HTTP/1.1, then hands it over. */
const sniff = (socket: net.Socket, http1: Handoff, h2: Http2Handoff): void => {
  let head: Buffer | undefined
  const abandon = () => socket.destroy()
  const onData = (chunk: Buffer) => {
    head = head === undefined ? chunk : Buffer.concat([head, chunk])
    const verdict = sniffPreface(head)
    if (verdict === "undecided") return
    socket.off("data", onData)
    socket.off("error", abandon)
    socket.off("end", abandon)
    socket.setTimeout(0)
    socket.pause()
    if (verdict === "h2") {
      h2(socket, head)
      return
    }
    socket.unshift(head)
    http1(socket)
    socket.resume()
  }
  socket.on("data", onData)
  socket.on("error", abandon)
  socket.on("end", abandon)
  socket.setTimeout(sniffTimeout, abandon)
}

export class Listeners extends Effect.Service<Listeners>()("etcd-proxy/Listeners", {
  scoped: Effect.gen(function* () {
    const config = yield* ProxyConfig
    const forwarder = yield* Forwarder
    const identity = yield* ProxyIdentity
    const tls = yield* TlsMaterial
    const members = yield* MemberList
    const guard = yield* ModeGuard
    const http2 = guard.mode === "readwrite" ? yield* Http2Relay : yield* GrpcReadOnly

    /**
     * The node:http(s) server keeps what it does for HTTP/1.1 (timeouts, keep-alive, connection
     * tracking for shutdown); only its connection listener is taken over, to be called for the
     * connections that turn out to speak HTTP/1.1.
     */
    const takeOver = (server: http.Server, event: "connection" | "secureConnection") => {
      const [original, ...others] = server.listeners(event) as Array<Handoff>
      if (original === undefined || others.length > 0) {
        return Effect.fail(
          new StartupError({ message: `node:http has no single ${event} listener to take over` }),
        )
      }
      server.removeAllListeners(event)
      const http1: Handoff = (socket) => original.call(server, socket)
      const h2 = asHttp2(http2.accept)
      server.on(event, (socket: net.Socket & { alpnProtocol?: string | false }) => {
        if (socket.alpnProtocol === "h2") h2(socket, Buffer.alloc(0))
        else if (socket.alpnProtocol === "http/1.1") http1(socket)
        else sniff(socket, http1, h2)
      })
      return Effect.void
    }

    const listen = (url: URL) =>
      Effect.acquireRelease(
        Effect.gen(function* () {
          const secure = url.protocol === "https:"
          const server = secure
            ? https.createServer(
                { ...serverOptions, ...tls.server, ALPNProtocols: alpnProtocols },
                forwarder.handle,
              )
            : http.createServer(serverOptions, forwarder.handle)
          yield* takeOver(server, secure ? "secureConnection" : "connection")
          return yield* Effect.async<http.Server, StartupError>((resume) => {
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

    // Runs before the Forwarder's own finalizer: stop accepting, drain, then cut what is left.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        yield* Effect.logInfo("shutting down: no new connections")
        for (const server of servers) {
          server.close()
          server.closeIdleConnections()
        }
        yield* Effect.all([forwarder.drain, http2.drain], { concurrency: "unbounded" })
        for (const server of servers) server.closeAllConnections()
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
