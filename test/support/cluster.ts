/** A real etcd cluster as a scoped test layer: started on free loopback ports, always stopped. */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { startCluster, type Cluster } from "../../scripts/lib/cluster.mjs"

export class EtcdCluster extends Context.Tag("test/EtcdCluster")<EtcdCluster, Cluster>() {
  static readonly layer = (options: Parameters<typeof startCluster>[0] = {}) =>
    Layer.scoped(EtcdCluster, acquireCluster(options))
}

export const acquireCluster = (options: Parameters<typeof startCluster>[0] = {}) =>
  Effect.acquireRelease(
    Effect.promise(() => startCluster(options)),
    (cluster) => Effect.promise(() => cluster.stop()),
  )
