/** The proxy's own status document, `GET /v2/config/local/proxy` (SPEC §8.1), as a pure function. */
import type { ProxyMode } from "./Config.js"
import type { DiscoveryStatus } from "./Discovery.js"
import type { EndpointState, EndpointTable } from "./Endpoints.js"

export interface ProxyStatus {
  /** etcd's field: the available endpoints in the order requests try them. */
  readonly endpoints: ReadonlyArray<string>
  readonly mode: ProxyMode
  readonly members: ReadonlyArray<{
    readonly name: string
    readonly clientURLs: ReadonlyArray<{ readonly url: string; readonly state: EndpointState }>
  }>
  readonly discovery:
    | { readonly state: "complete" }
    | { readonly state: "pending"; readonly registered: number; readonly size: number | null }
}

export const proxyStatus = (
  table: EndpointTable,
  mode: ProxyMode,
  discovery: DiscoveryStatus,
): ProxyStatus => {
  const byUrl = new Map<string, (typeof table.all)[number]>()
  for (const endpoint of table.all) if (!byUrl.has(endpoint.url)) byUrl.set(endpoint.url, endpoint)
  return {
    endpoints: table.available.map((endpoint) => endpoint.url),
    mode,
    members: table.members
      .filter((member) => !member.isLearner)
      .map((member) => ({
        name: member.name,
        clientURLs: member.clientURLs.flatMap((url) => {
          const endpoint = byUrl.get(url.replace(/\/$/, ""))
          return endpoint === undefined ? [] : [{ url: endpoint.url, state: endpoint.state }]
        }),
      })),
    discovery:
      discovery._tag === "Complete"
        ? { state: "complete" }
        : { state: "pending", registered: discovery.registered, size: discovery.size },
  }
}
