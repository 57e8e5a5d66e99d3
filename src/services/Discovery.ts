/** Where the proxy learns its cluster's peer URLs: a port with one implementation per source. */
import { Context, Effect, Layer, Option } from "effect"
import { ProxyConfig } from "../domain/Config.js"
import { DataDir } from "./DataDir.js"

export type DiscoveryStatus =
  | { readonly _tag: "Complete" }
  | { readonly _tag: "Pending"; readonly registered: number; readonly size: number | null }

export const complete: DiscoveryStatus = { _tag: "Complete" }

export interface DiscoveryShape {
  /** Names the source in logs, e.g. `--initial-cluster`. */
  readonly source: string
  /** Read synchronously by the hot path: while pending, requests get 503 `DiscoveryPending`. */
  readonly status: () => DiscoveryStatus
  /** The peer URLs; waits until discovery is complete. */
  readonly peerUrls: Effect.Effect<ReadonlyArray<string>>
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
