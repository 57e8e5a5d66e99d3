/** The endpoint table: members' client URLs with their state, as immutable snapshots. */
import type { Member } from "./Member.js"

export type EndpointState = "available" | "failed" | "excluded-loop"

export interface Endpoint {
  /** `scheme://host:port`, the identity used across refreshes. */
  readonly key: string
  /** The client URL as the member advertises it. */
  readonly url: string
  readonly member: string
  readonly state: EndpointState
}

/**
 * One consistent view of the endpoints, in the order requests try them.
 * `available` is computed once per snapshot because the hot path reads it on every request.
 */
export class EndpointTable {
  readonly available: ReadonlyArray<Endpoint>

  constructor(
    readonly all: ReadonlyArray<Endpoint>,
    readonly members: ReadonlyArray<Member>,
  ) {
    this.available = all.filter((endpoint) => endpoint.state === "available")
  }

  static readonly empty = new EndpointTable([], [])

  /**
   * Built on first use: the hot path and every change listener look endpoints up by key, and a
   * linear search made each failed attempt cost O(endpoints) per pooled endpoint, so a member
   * advertising thousands of dead client URLs held a GET for tens of seconds.
   */
  private byKey: Map<string, Endpoint> | undefined

  get(key: string): Endpoint | undefined {
    if (this.byKey === undefined) {
      this.byKey = new Map()
      for (const endpoint of this.all)
        if (!this.byKey.has(endpoint.key)) this.byKey.set(endpoint.key, endpoint)
    }
    return this.byKey.get(key)
  }

  private withState(key: string, from: ReadonlyArray<EndpointState>, to: EndpointState) {
    let changed = false
    const all = this.all.map((endpoint) => {
      if (endpoint.key !== key || !from.includes(endpoint.state)) return endpoint
      changed = true
      return { ...endpoint, state: to }
    })
    return changed ? new EndpointTable(all, this.members) : this
  }

  markFailed(key: string): EndpointTable {
    return this.withState(key, ["available"], "failed")
  }

  markAvailable(key: string): EndpointTable {
    return this.withState(key, ["failed"], "available")
  }

  /** A request came back through this endpoint: skip it until the next refresh (SPEC §5.6). */
  excludeLoop(key: string): EndpointTable {
    return this.withState(key, ["available", "failed"], "excluded-loop")
  }

  reorder(order: ReadonlyArray<Endpoint>): EndpointTable {
    const byKey = new Map(this.all.map((endpoint) => [endpoint.key, endpoint]))
    const all = order.flatMap((endpoint) => {
      const current = byKey.get(endpoint.key)
      return current === undefined ? [] : [current]
    })
    return new EndpointTable(all, this.members)
  }

  /** The keys of the endpoints in order, to compare two tables' membership. */
  get keys(): ReadonlyArray<string> {
    return this.all.map((endpoint) => endpoint.key)
  }
}

export const originKey = (url: URL): string => `${url.protocol}//${url.host}`

/**
 * The table after a refresh: the union of the members' client URLs (learners serve no client
 * traffic), keeping the previous order and failure state of endpoints that stay. New endpoints
 * go last; the caller reshuffles when the set changed.
 */
export const tableFromMembers = (
  members: ReadonlyArray<Member>,
  previous: EndpointTable,
  isOwnListener: (url: URL) => boolean,
): EndpointTable => {
  const fresh = new Map<string, Endpoint>()
  for (const member of members) {
    if (member.isLearner) continue
    for (const clientUrl of member.clientURLs) {
      let url: URL
      try {
        url = new URL(clientUrl)
      } catch {
        continue
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") continue
      const key = originKey(url)
      if (fresh.has(key)) continue
      const before = previous.get(key)
      const state: EndpointState = isOwnListener(url)
        ? "excluded-loop"
        : before?.state === "failed"
          ? "failed"
          : "available"
      fresh.set(key, { key, url: clientUrl.replace(/\/$/, ""), member: member.name, state })
    }
  }
  const kept = previous.all.flatMap((endpoint) => {
    const next = fresh.get(endpoint.key)
    if (next === undefined) return []
    fresh.delete(endpoint.key)
    return [next]
  })
  return new EndpointTable([...kept, ...fresh.values()], members)
}

/** Uniform Fisher–Yates with the caller's random source: `nextInt(n)` is in `[0, n)`. */
export const fisherYates = <A>(items: ReadonlyArray<A>, nextInt: (n: number) => number): A[] => {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = nextInt(i + 1)
    const tmp = out[i]!
    out[i] = out[j]!
    out[j] = tmp
  }
  return out
}
