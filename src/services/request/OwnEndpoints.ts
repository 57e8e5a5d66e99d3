/**
 * The answers the proxy makes itself on its client listeners (SPEC §8.1, §8.2): the status
 * document and the metrics, the same for every front.
 */
import * as Effect from "effect/Effect"
import { configPath, type OwnEndpoint } from "../../domain/Admission.js"
import { proxyStatus } from "../../domain/Status.js"
import { Discovery } from "../cluster/Discovery.js"
import { MemberList } from "../cluster/MemberList.js"
import { Metrics } from "../Metrics.js"
import { ModeGuard } from "./ModeGuard.js"

export interface OwnAnswer {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

const json = "application/json"

export class OwnEndpoints extends Effect.Service<OwnEndpoints>()("etcd-proxy/OwnEndpoints", {
  effect: Effect.gen(function* () {
    const members = yield* MemberList
    const discovery = yield* Discovery
    const metrics = yield* Metrics
    const { mode } = yield* ModeGuard

    const notAllowed = (method: string, path: string): OwnAnswer => ({
      status: 405,
      headers: { allow: "GET", "content-type": json },
      body: JSON.stringify({ message: `httpproxy: ${method} not allowed on ${path}` }),
    })

    const status = (): OwnAnswer => ({
      status: 200,
      headers: { "content-type": json },
      body: JSON.stringify(proxyStatus(members.table(), mode, discovery.status())),
    })

    /** The answer to `method` on one of the proxy's own paths; `HEAD` gets the headers alone. */
    const answer = (endpoint: OwnEndpoint, method: string): Promise<OwnAnswer> => {
      if (method !== "GET" && method !== "HEAD") {
        return Promise.resolve(notAllowed(method, endpoint === "config" ? configPath : "/metrics"))
      }
      if (endpoint === "config") return Promise.resolve(status())
      return metrics.exposition().then(
        (text): OwnAnswer => ({
          status: 200,
          headers: { "content-type": metrics.contentType },
          body: text,
        }),
        (): OwnAnswer => ({
          status: 500,
          headers: { "content-type": json },
          body: JSON.stringify({ message: "httpproxy: metrics unavailable" }),
        }),
      )
    }

    return { answer } as const
  }),
}) {}
