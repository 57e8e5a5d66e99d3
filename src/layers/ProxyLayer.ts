/** Wires the services into a running proxy: the one layer the CLI launches and embedders compose. */
import { NodeContext } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { ProxyConfig, type ProxyConfigShape } from "../domain/Config.js"
import { UsageError } from "../domain/Errors.js"
import { DataDir } from "../services/DataDir.js"
import { Discovery } from "../services/Discovery.js"
import { Forwarder } from "../services/Forwarder.js"
import { Listeners } from "../services/Listeners.js"
import { MemberClient } from "../services/MemberClient.js"
import { MemberList } from "../services/MemberList.js"
import { Metrics } from "../services/Metrics.js"
import { ModeGuard } from "../services/ModeGuard.js"
import { Shuffler } from "../services/Shuffler.js"
import { TlsMaterial } from "../services/TlsMaterial.js"

/** The discovery implementations that need a network protocol: discovery URL and DNS SRV. */
const networkDiscovery: Layer.Layer<Discovery, UsageError, ProxyConfig> = Layer.unwrapEffect(
  Effect.map(ProxyConfig, (config) => {
    switch (config.cluster._tag) {
      case "SavedOnly":
        return Layer.fail(
          new UsageError({
            message: `no cluster source: set one of --initial-cluster, --discovery or --discovery-srv (no saved cluster file in ${config.dataDir}/proxy)`,
          }),
        )
      default:
        return Layer.fail(
          new UsageError({ message: `${config.cluster._tag} is not available in this build` }),
        )
    }
  }),
)

/** Everything below the listeners, for embedding or testing with another front. */
export const MembersLive = (config: ProxyConfigShape) => {
  const configLayer = Layer.succeed(ProxyConfig, config)
  const dataDir = DataDir.Default.pipe(Layer.provide(NodeContext.layer))
  const discovery = Discovery.fromConfig(networkDiscovery).pipe(Layer.provide(dataDir))
  const tls = TlsMaterial.Default
  const memberList = MemberList.Default.pipe(
    Layer.provide(
      Layer.mergeAll(discovery, dataDir, MemberClient.Default.pipe(Layer.provide(tls))),
    ),
  )
  return Layer.mergeAll(memberList, discovery, tls, Metrics.Default, ModeGuard.Default).pipe(
    Layer.provideMerge(Layer.merge(Metrics.Default, configLayer)),
  )
}

/** The whole proxy: member list, shuffler and listeners. */
export const ProxyLive = (config: ProxyConfigShape) =>
  Layer.merge(Listeners.Default, Shuffler.Default).pipe(
    Layer.provideMerge(Forwarder.Default),
    Layer.provideMerge(MembersLive(config)),
  )
