/** Binds every `--listen-client-urls` entry and hands connections to the request handlers. */
import * as http from "node:http"
import * as https from "node:https"
import type { AddressInfo } from "node:net"
import { Effect } from "effect"
import { ProxyConfig } from "../domain/Config.js"
import { StartupError } from "../domain/Errors.js"
import { Forwarder } from "./Forwarder.js"
import { MemberList } from "./MemberList.js"
import { ModeGuard } from "./ModeGuard.js"
import { TlsMaterial } from "./TlsMaterial.js"

const serverOptions: http.ServerOptions = {
  // A watch may stay open for hours (SPEC §3.9); slow or idle clients are bounded by these two.
  requestTimeout: 0,
  headersTimeout: 60_000,
  keepAliveTimeout: 5_000,
  noDelay: true,
}

const printable = (url: URL): string => url.href.replace(/\/$/, "")

export class Listeners extends Effect.Service<Listeners>()("etcd-proxy/Listeners", {
  scoped: Effect.gen(function* () {
    const config = yield* ProxyConfig
    const forwarder = yield* Forwarder
    const tls = yield* TlsMaterial
    const members = yield* MemberList
    const guard = yield* ModeGuard

    const listen = (url: URL) =>
      Effect.acquireRelease(
        Effect.async<http.Server, StartupError>((resume) => {
          const server =
            url.protocol === "https:"
              ? https.createServer({ ...serverOptions, ...tls.server }, forwarder.handle)
              : http.createServer(serverOptions, forwarder.handle)
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
        yield* forwarder.drain
        for (const server of servers) server.closeAllConnections()
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
        id: forwarder.proxyId,
        endpoints: members
          .table()
          .available.map((e) => e.url)
          .join(","),
      }),
    )
    return { addresses } as const
  }),
}) {}
