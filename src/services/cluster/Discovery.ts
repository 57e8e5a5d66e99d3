/** Where the proxy learns its cluster's peer URLs: a port with one implementation per source. */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { ProxyConfig } from "../../domain/Config.js"
import {
  complete,
  SrvDiscoveryFailed,
  type DiscoveryShape,
  type DiscoveryStatus,
  type DiscoveryUrlError,
} from "../../domain/Discovery.js"
import { DataDir } from "../DataDir.js"
import type { DiscoveryHttp } from "./DiscoveryHttp.js"
import { makeUrlDiscovery } from "./DiscoveryUrl.js"
import { SrvResolver, type SrvRecord } from "./SrvResolver.js"

/** `_etcd-server-ssl[-name]._tcp.DOMAIN` (https) and `_etcd-server[-name]._tcp.DOMAIN` (http). */
export const srvServices = (
  domain: string,
  serviceName: string | undefined,
): ReadonlyArray<{ readonly name: string; readonly scheme: "https" | "http" }> => {
  const suffix = serviceName === undefined || serviceName === "" ? "" : `-${serviceName}`
  const zone = domain.replace(/\.$/, "")
  return [
    { name: `_etcd-server-ssl${suffix}._tcp.${zone}`, scheme: "https" },
    { name: `_etcd-server${suffix}._tcp.${zone}`, scheme: "http" },
  ]
}

/** A record's peer URL: SRV targets carry a trailing dot that URLs must not. */
export const srvPeerUrl = (scheme: "https" | "http", record: SrvRecord): string => {
  const host = record.name.replace(/\.$/, "")
  return `${scheme}://${host.includes(":") ? `[${host}]` : host}:${record.port}`
}

const fixed = (source: string, peerUrls: ReadonlyArray<string>): DiscoveryShape => ({
  source,
  status: () => complete,
  peerUrls: Effect.succeed(peerUrls),
})

export class Discovery extends Context.Tag("etcd-proxy/Discovery")<Discovery, DiscoveryShape>() {
  /** Peer URLs given on the command line (`--initial-cluster`). */
  static readonly static = (peerUrls: ReadonlyArray<string>): Layer.Layer<Discovery> =>
    Layer.succeed(Discovery, fixed("--initial-cluster", peerUrls))

  /** The v2 discovery protocol against a discovery URL (SPEC §6.1–6.3); listens while it waits. */
  static readonly fromUrl = (url: URL): Layer.Layer<Discovery, DiscoveryUrlError, DiscoveryHttp> =>
    Layer.scoped(Discovery, makeUrlDiscovery(url))

  /**
   * DNS SRV records name the peers (SPEC §6.4), looked up once at start as etcd does. Plain-http
   * records count (etcd 3.4 ignores them, its bug #11321); no record at all fails start-up.
   */
  static readonly fromSrv = (
    domain: string,
    serviceName: string | undefined,
  ): Layer.Layer<Discovery, SrvDiscoveryFailed, SrvResolver> =>
    Layer.effect(
      Discovery,
      Effect.gen(function* () {
        const resolver = yield* SrvResolver
        const services = srvServices(domain, serviceName)
        const answers = yield* Effect.forEach(
          services,
          (service) =>
            Effect.either(resolver.resolveSrv(service.name)).pipe(
              Effect.map((answer) => ({ service, answer })),
            ),
          { concurrency: "unbounded" },
        )
        const peers = new Set<string>()
        for (const { service, answer } of answers) {
          if (Either.isRight(answer)) {
            for (const record of answer.right) peers.add(srvPeerUrl(service.scheme, record))
          }
        }
        if (peers.size === 0) {
          return yield* new SrvDiscoveryFailed({
            domain,
            lookups: answers.map(({ service, answer }) => ({
              name: service.name,
              reason: Either.isLeft(answer) ? answer.left.reason : "no records",
            })),
          })
        }
        const peerUrls = [...peers].sort()
        yield* Effect.logInfo("found the members' peer URLs in DNS SRV records").pipe(
          Effect.annotateLogs({
            domain,
            dns: resolver.server,
            peers: peerUrls.join(","),
          }),
        )
        return fixed(`--discovery-srv ${domain}`, peerUrls)
      }),
    )

  /** Peer URLs saved by an earlier run in `<data-dir>/proxy/cluster` (SPEC §7). */
  static readonly fromSavedFile = (
    file: string,
    peerUrls: ReadonlyArray<string>,
  ): Layer.Layer<Discovery> => Layer.succeed(Discovery, fixed(file, peerUrls))

  /**
   * The saved cluster file when there is one (it wins, and says so), else the configured
   * source. Discovery URL and SRV implementations are provided by `fallback`.
   */
  static readonly fromConfig = <E>(
    fallback: Layer.Layer<Discovery, E, ProxyConfig>,
  ): Layer.Layer<Discovery, E, ProxyConfig | DataDir> =>
    Layer.unwrapEffect(
      Effect.gen(function* () {
        const dataDir = yield* DataDir
        const config = yield* ProxyConfig
        const saved = yield* dataDir.readCluster.pipe(
          Effect.tapError((error) => Effect.logWarning(error.message)),
          Effect.orElseSucceed(() => Option.none<ReadonlyArray<string>>()),
        )
        if (Option.isSome(saved)) {
          yield* Effect.logInfo(
            "using the saved cluster file; it wins over the configured source",
          ).pipe(Effect.annotateLogs({ file: dataDir.clusterFile, peers: saved.value.join(",") }))
          return Discovery.fromSavedFile(dataDir.clusterFile, saved.value)
        }
        if (config.cluster._tag === "InitialCluster") {
          return Discovery.static(
            config.cluster.members.map((m) => m.peerUrl.href.replace(/\/$/, "")),
          )
        }
        return fallback
      }),
    )
}

export type { DiscoveryShape, DiscoveryStatus }
