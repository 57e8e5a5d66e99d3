/** Wires the services into a running proxy: the one layer the CLI launches and embedders compose. */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { ProxyConfig, type ProxyConfigShape } from "../domain/Config.js"
import type { DiscoveryError, SrvLookupError } from "../domain/Discovery.js"
import { UsageError } from "../domain/Errors.js"
import { DataDir } from "../services/DataDir.js"
import { Discovery } from "../services/cluster/Discovery.js"
import { DiscoveryHttp } from "../services/cluster/DiscoveryHttp.js"
import { Forwarder } from "../services/request/Forwarder.js"
import { Http1Front } from "../services/request/Http1Front.js"
import { Listeners } from "../services/request/Listeners.js"
import { MemberClient } from "../services/cluster/MemberClient.js"
import { MemberList } from "../services/cluster/MemberList.js"
import { MetricsListener } from "../services/request/MetricsListener.js"
import { Metrics } from "../services/Metrics.js"
import { ModeGuard } from "../services/request/ModeGuard.js"
import { MemoryRelease } from "../services/request/MemoryRelease.js"
import { OwnEndpoints } from "../services/request/OwnEndpoints.js"
import { ProxyIdentity } from "../services/request/ProxyIdentity.js"
import { RequestGate } from "../services/request/RequestGate.js"
import { Upstream } from "../services/request/Upstream.js"
import { Shuffler } from "../services/cluster/Shuffler.js"
import { PlatformLive } from "./Platform.js"
import { ReloadOnSighup } from "./Reload.js"
import { SrvResolver } from "../services/cluster/SrvResolver.js"
import { TlsMaterial } from "../services/TlsMaterial.js"

/** The discovery implementations that need a network protocol: discovery URL and DNS SRV. */
const networkDiscovery: Layer.Layer<
  Discovery,
  UsageError | DiscoveryError | SrvLookupError,
  ProxyConfig
> = Layer.unwrapEffect(
  Effect.map(
    ProxyConfig,
    (config): Layer.Layer<Discovery, UsageError | DiscoveryError | SrvLookupError> => {
      const cluster = config.cluster
      switch (cluster._tag) {
        case "DiscoveryUrl":
          return Discovery.fromUrl(cluster.url).pipe(
            Layer.provide(DiscoveryHttp.layer(config.discoveryProxy)),
          )
        case "DiscoverySrv":
          return Discovery.fromSrv(cluster.domain, cluster.serviceName).pipe(
            Layer.provide(SrvResolver.layer(config.discoverySrvDns)),
          )
        case "InitialCluster":
          return Discovery.static(cluster.members.map((m) => m.peerUrl.href.replace(/\/$/, "")))
        case "SavedOnly":
          return Layer.fail(
            new UsageError({
              message: `no cluster source: set one of --initial-cluster, --discovery or --discovery-srv (no saved cluster file in ${config.dataDir}/proxy)`,
            }),
          )
      }
    },
  ),
)

/**
 * The command's discovery: the saved `<data-dir>/proxy/cluster` when there is one, else the
 * configured source (`--initial-cluster`, `--discovery`, `--discovery-srv`).
 */
export const ConfiguredDiscovery: Layer.Layer<
  Discovery,
  UsageError | DiscoveryError | SrvLookupError,
  ProxyConfig | DataDir
> = Discovery.fromConfig(networkDiscovery)

/**
 * Everything below the listeners. `discovery` may use the proxy's `DataDir` (where the saved
 * cluster file lives); ProxyConfig, FileSystem and Path come from context.
 */
const members = <E, R>(discovery: Layer.Layer<Discovery, E, R>) => {
  const dataDir = DataDir.Default
  const found = discovery.pipe(Layer.provide(dataDir))
  const tls = TlsMaterial.Default.pipe(Layer.provide(dataDir))
  const memberList = MemberList.Default.pipe(
    Layer.provide(Layer.mergeAll(found, dataDir, MemberClient.Default.pipe(Layer.provide(tls)))),
  )
  const reload = ReloadOnSighup.pipe(Layer.provide(tls))
  return Layer.mergeAll(memberList, found, tls, reload, Metrics.Default, ModeGuard.Default).pipe(
    Layer.provideMerge(Metrics.Default),
  )
}

/** Everything below the listeners, for embedding or testing with another front. */
export const MembersLive = (config: ProxyConfigShape) =>
  members(ConfiguredDiscovery).pipe(
    Layer.provideMerge(Layer.succeed(ProxyConfig, config)),
    Layer.provide(PlatformLive),
  )

/** The request path's shared parts: identity, admission, and the proxy's own answers. */
const RequestPathLive = Layer.mergeAll(
  RequestGate.Default,
  OwnEndpoints.Default,
  MemoryRelease.Default,
).pipe(Layer.provideMerge(ProxyIdentity.Default))

/**
 * The whole proxy (member list, shuffler, listeners) for a program that embeds it: it reads
 * `ProxyConfig` from context, takes the platform (`FileSystem`, `Path`) from context, and finds
 * the cluster with the `discovery` the caller chooses (`ConfiguredDiscovery` as the command does,
 * or e.g. `Discovery.static([...peer URLs])`). The listeners are bound while the layer is built
 * and closed with its scope.
 */
export const ProxyFromContext = <E, R>(discovery: Layer.Layer<Discovery, E, R>) =>
  Layer.mergeAll(Listeners.Default, MetricsListener.Default, Shuffler.Default).pipe(
    Layer.provideMerge(Http1Front.Default),
    Layer.provideMerge(Forwarder.Default),
    Layer.provideMerge(Upstream.Default),
    Layer.provideMerge(RequestPathLive),
    Layer.provideMerge(members(discovery)),
  )

/** The whole proxy as the command runs it, for one configuration. */
export const ProxyLive = (config: ProxyConfigShape) =>
  ProxyFromContext(ConfiguredDiscovery).pipe(
    Layer.provideMerge(Layer.succeed(ProxyConfig, config)),
    Layer.provide(PlatformLive),
  )
