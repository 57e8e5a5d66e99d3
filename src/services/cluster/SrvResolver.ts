/** DNS SRV look-ups (SPEC §6.4): Node's resolver, asking the system's servers or `--discovery-srv-dns`. */
import { lookup, Resolver } from "node:dns/promises"
import { isIP, isIPv6 } from "node:net"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { SrvLookupError } from "../../domain/Discovery.js"

export interface SrvRecord {
  readonly name: string
  readonly port: number
  readonly priority: number
  readonly weight: number
}

export interface SrvResolverShape {
  /** Where the answers come from, for logs: `system` or `HOST:PORT`. */
  readonly server: string
  readonly resolveSrv: (name: string) => Effect.Effect<ReadonlyArray<SrvRecord>, SrvLookupError>
}

const reasonOf = (error: unknown): string => {
  const code = (error as { code?: string }).code
  switch (code) {
    case "ENOTFOUND":
    case "ENODATA":
      return "no such SRV record"
    case "ETIMEOUT":
      return "the DNS server did not answer"
    case "ECONNREFUSED":
      return "the DNS server refused the connection"
    case "EREFUSED":
      return "the DNS server refused the query (it serves no such zone)"
    case "ESERVFAIL":
      return "the DNS server failed to answer (SERVFAIL)"
    default:
      return code ?? (error as Error).message ?? String(error)
  }
}

/** `setServers` takes addresses only: a server given by name is looked up once, here. */
const serverAddress = (host: string): Effect.Effect<string, SrvLookupError> =>
  isIP(host) !== 0
    ? Effect.succeed(host)
    : Effect.tryPromise({
        try: () => lookup(host).then((found) => found.address),
        catch: (error) =>
          new SrvLookupError({
            name: host,
            reason: `cannot resolve the --discovery-srv-dns server: ${reasonOf(error)}`,
          }),
      })

const make = (server: { readonly host: string; readonly port: number } | undefined) =>
  Effect.gen(function* () {
    const resolver = new Resolver({ timeout: 2_000, tries: 2 })
    let label = "system"
    if (server !== undefined) {
      const address = yield* serverAddress(server.host)
      label = `${isIPv6(address) ? `[${address}]` : address}:${server.port}`
      resolver.setServers([label])
    }
    const shape: SrvResolverShape = {
      server: label,
      resolveSrv: (name) =>
        Effect.tryPromise({
          try: () => resolver.resolveSrv(name),
          catch: (error) => new SrvLookupError({ name, reason: reasonOf(error) }),
        }).pipe(Effect.onInterrupt(() => Effect.sync(() => resolver.cancel()))),
    }
    return shape
  })

export class SrvResolver extends Context.Tag("etcd-proxy/SrvResolver")<
  SrvResolver,
  SrvResolverShape
>() {
  /** The system's DNS servers (`/etc/resolv.conf`). */
  static readonly system: Layer.Layer<SrvResolver, SrvLookupError> = Layer.effect(
    SrvResolver,
    make(undefined),
  )

  /** One DNS server, `HOST:PORT`. */
  static readonly server = (server: {
    readonly host: string
    readonly port: number
  }): Layer.Layer<SrvResolver, SrvLookupError> => Layer.effect(SrvResolver, make(server))

  static readonly layer = (
    server: { readonly host: string; readonly port: number } | undefined,
  ): Layer.Layer<SrvResolver, SrvLookupError> =>
    server === undefined ? SrvResolver.system : SrvResolver.server(server)
}
