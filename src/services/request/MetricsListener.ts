/**
 * `--listen-metrics-urls` (SPEC §8.6): listeners that serve the proxy's own operational endpoints
 * only (`/metrics`, `/livez`, `/readyz`, `/health`) and never forward anything. Off the hot path,
 * so plain node:http(s); https URLs use the client TLS material and follow its reloads.
 */
import * as http from "node:http"
import * as https from "node:https"
import type { AddressInfo } from "node:net"
import * as Effect from "effect/Effect"
import { ProxyConfig } from "../../domain/Config.js"
import { StartupError } from "../../domain/Errors.js"
import { healthBody, readiness } from "../../domain/Readiness.js"
import { Discovery } from "../cluster/Discovery.js"
import { MemberList } from "../cluster/MemberList.js"
import { Metrics } from "../Metrics.js"
import { TlsMaterial } from "../TlsMaterial.js"

const json = "application/json"
const served = ["/metrics", "/livez", "/readyz", "/health"]

const serverOptions: http.ServerOptions = {
  requestTimeout: 30_000,
  headersTimeout: 10_000,
  keepAliveTimeout: 5_000,
}

const printable = (url: URL): string => url.href.replace(/\/$/, "")

export class MetricsListener extends Effect.Service<MetricsListener>()(
  "etcd-proxy/MetricsListener",
  {
    scoped: Effect.gen(function* () {
      const config = yield* ProxyConfig
      const members = yield* MemberList
      const discovery = yield* Discovery
      const metrics = yield* Metrics
      const tls = yield* TlsMaterial

      const handle = (request: http.IncomingMessage, response: http.ServerResponse): void => {
        const send = (status: number, body: string, headers: http.OutgoingHttpHeaders = {}) => {
          response.writeHead(status, {
            "content-type": json,
            "content-length": Buffer.byteLength(body),
            ...headers,
          })
          response.end(request.method === "HEAD" ? undefined : body)
        }
        const path = (request.url ?? "").replace(/\?.*$/, "")
        if (!served.includes(path)) {
          return send(
            404,
            JSON.stringify({
              message: `etcd-proxy: ${path} is not served here: a metrics listener serves only ${served.join(", ")} and forwards nothing`,
            }),
          )
        }
        if (request.method !== "GET" && request.method !== "HEAD") {
          return send(
            405,
            JSON.stringify({ message: `etcd-proxy: ${request.method} not allowed on ${path}` }),
            { allow: "GET, HEAD" },
          )
        }
        switch (path) {
          case "/metrics":
            metrics.exposition().then(
              (text) => send(200, text, { "content-type": metrics.contentType }),
              () => send(500, JSON.stringify({ message: "etcd-proxy: metrics unavailable" })),
            )
            return
          case "/livez":
            return send(200, JSON.stringify({ health: "true" }))
          default: {
            const state = readiness(members.table(), discovery.status())
            return send(state.ready ? 200 : 503, healthBody(state))
          }
        }
      }

      const listen = (url: URL) =>
        Effect.acquireRelease(
          Effect.async<http.Server, StartupError>((resume) => {
            const serverTls = tls.server()
            const server =
              url.protocol === "https:" && serverTls !== undefined
                ? https.createServer({ ...serverOptions, ...serverTls }, handle)
                : http.createServer(serverOptions, handle)
            if (server instanceof https.Server) {
              tls.onReload(() => server.setSecureContext(tls.server()!))
            }
            const onError = (error: NodeJS.ErrnoException) =>
              resume(
                Effect.fail(
                  new StartupError({
                    message: `cannot listen on --listen-metrics-urls ${printable(url)}: ${error.code ?? error.message}`,
                    cause: error,
                  }),
                ),
              )
            server.once("error", onError)
            const host = url.hostname.replace(/^\[|\]$/g, "")
            server.listen({ host, port: Number(url.port) }, () => {
              server.off("error", onError)
              resume(Effect.succeed(server))
            })
          }),
          (server) =>
            Effect.sync(() => {
              server.close()
              server.closeAllConnections()
            }),
        )

      const servers = yield* Effect.forEach(config.metricsUrls, listen)
      const addresses = servers.map((server, i) => {
        const url = new URL(config.metricsUrls[i]!.href)
        url.port = String((server.address() as AddressInfo).port)
        return printable(url)
      })
      if (addresses.length > 0) {
        yield* Effect.logInfo("metrics listening").pipe(
          Effect.annotateLogs({ urls: addresses.join(","), paths: served.join(",") }),
        )
      }
      return { addresses } as const
    }),
  },
) {}
