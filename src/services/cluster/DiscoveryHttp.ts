/** HTTP towards the discovery service (SPEC §6.1, §6.5): plain GETs, optionally through `--discovery-proxy`. */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Agent, ProxyAgent, type Dispatcher } from "undici"
import { DiscoveryUnreachable } from "../../domain/Discovery.js"

export interface DiscoveryAnswer {
  readonly status: number
  readonly header: (name: string) => string | undefined
  readonly body: string
}

export interface DiscoveryHttpShape {
  /**
   * One GET; a connection that fails or breaks is `DiscoveryUnreachable`. No time limit of its own:
   * callers bound it (plain reads) or let it wait (watches); interruption aborts the request.
   */
  readonly get: (url: URL) => Effect.Effect<DiscoveryAnswer, DiscoveryUnreachable>
}

const describe = (error: unknown): string => {
  const e = error as {
    code?: string
    message?: string
    cause?: { code?: string; message?: string }
  }
  return e.cause?.code ?? e.code ?? e.cause?.message ?? e.message ?? String(error)
}

export class DiscoveryHttp extends Context.Tag("etcd-proxy/DiscoveryHttp")<
  DiscoveryHttp,
  DiscoveryHttpShape
>() {
  /** undici, directly or through an HTTP proxy (absolute-form for http, CONNECT for https). */
  static readonly layer = (proxy: URL | undefined): Layer.Layer<DiscoveryHttp> =>
    Layer.scoped(
      DiscoveryHttp,
      Effect.gen(function* () {
        const options = { headersTimeout: 0, bodyTimeout: 0, connections: 4 }
        const dispatcher: Dispatcher = yield* Effect.acquireRelease(
          Effect.sync(() =>
            proxy === undefined
              ? new Agent(options)
              : // As Go's transport (and so etcd): absolute-form requests for http, CONNECT for https.
                new ProxyAgent({ ...options, uri: proxy.href, proxyTunnel: false }),
          ),
          (dispatcher) => Effect.promise(() => dispatcher.destroy()),
        )
        if (proxy !== undefined) {
          yield* Effect.logInfo("discovery traffic goes through an HTTP proxy").pipe(
            Effect.annotateLogs({ "discovery-proxy": proxy.href }),
          )
        }
        const get = (url: URL): Effect.Effect<DiscoveryAnswer, DiscoveryUnreachable> =>
          Effect.tryPromise({
            try: async (signal) => {
              const response = await dispatcher.request({
                origin: url.origin,
                path: url.pathname + url.search,
                method: "GET",
                signal,
              })
              const body = await response.body.text()
              const headers = response.headers
              return {
                status: response.statusCode,
                header: (name: string) => {
                  const value = headers[name.toLowerCase()]
                  return Array.isArray(value) ? value[0] : value
                },
                body,
              }
            },
            catch: (error) => new DiscoveryUnreachable({ url: url.href, reason: describe(error) }),
          })
        return { get } as const
      }),
    )
}
