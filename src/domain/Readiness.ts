/**
 * Whether the proxy can serve (SPEC §8.6): the answer of `/readyz` and the metrics listener's
 * `/health`, as a pure function of the endpoint table and the discovery state.
 */
import type { DiscoveryStatus } from "./Discovery.js"
import type { EndpointTable } from "./Endpoints.js"

export type Readiness =
  { readonly ready: true } | { readonly ready: false; readonly reason: string }

export const readiness = (table: EndpointTable, discovery: DiscoveryStatus): Readiness => {
  if (discovery._tag === "Pending") {
    return {
      ready: false,
      reason:
        discovery.size === null
          ? "discovery pending: waiting for the discovery service"
          : `discovery pending: ${discovery.registered} of ${discovery.size} members registered`,
    }
  }
  if (table.available.length > 0) return { ready: true }
  if (table.all.length === 0) return { ready: false, reason: "no member client URL known yet" }
  const count = (state: string) => table.all.filter((e) => e.state === state).length
  const failed = count("failed")
  const loops = count("excluded-loop")
  return {
    ready: false,
    reason: `zero endpoints currently available (${failed} failed, ${loops} excluded as forwarding loops)`,
  }
}

/** The JSON body etcd's `/health` uses: `{"health":"true"}`, or `"false"` with the reason. */
export const healthBody = (state: Readiness): string =>
  JSON.stringify(state.ready ? { health: "true" } : { health: "false", reason: state.reason })
