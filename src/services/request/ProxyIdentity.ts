/**
 * Who this proxy is on the wire: its `Via` id, and the requests it has sent out and still waits
 * on, so that a request that comes back is recognised as a loop and a forged claim is not.
 */
import { randomBytes, randomFillSync } from "node:crypto"
import * as Effect from "effect/Effect"
import type { LoopClaim } from "../../domain/Admission.js"
import { noLoopClaim } from "../../domain/Admission.js"
import type { Endpoint } from "../../domain/Endpoints.js"
import { appendVia, ownViaNonce, viaEntry } from "../../domain/Headers.js"

const forged: LoopClaim = { _tag: "Forged" }

/** Unguessable nonces without a system call per request: random bytes drawn 4 KiB at a time. */
const nonceSource = () => {
  const pool = Buffer.allocUnsafe(4_096)
  let at = pool.length
  return (): string => {
    if (at + 9 > pool.length) {
      randomFillSync(pool)
      at = 0
    }
    at += 9
    return pool.toString("base64url", at - 9, at)
  }
}

export class ProxyIdentity extends Effect.Service<ProxyIdentity>()("etcd-proxy/ProxyIdentity", {
  sync: () => {
    const proxyId = `etcd-proxy-${randomBytes(6).toString("hex")}`
    const nextNonce = nonceSource()
    /** Nonce → the endpoint the request carrying it was sent to. */
    const outstanding = new Map<string, Endpoint>()

    return {
      proxyId,
      /**
       * The `Via` value for a request going to `endpoint`, after the ones it arrived with; the
       * nonce is remembered until `release`.
       */
      stamp: (endpoint: Endpoint, priorVia: string | undefined): { via: string; nonce: string } => {
        const nonce = nextNonce()
        outstanding.set(nonce, endpoint)
        return { via: appendVia(priorVia, viaEntry(proxyId, endpoint.url, nonce)), nonce }
      },
      release: (nonce: string): void => {
        outstanding.delete(nonce)
      },
      /** What a request's `Via` says about a loop through this proxy. */
      claim: (via: string | undefined): LoopClaim => {
        const nonce = ownViaNonce(via, proxyId)
        if (nonce === undefined) return noLoopClaim
        const endpoint = outstanding.get(nonce)
        return endpoint === undefined
          ? forged
          : { _tag: "Genuine", endpointKey: endpoint.key, endpointUrl: endpoint.url }
      },
      /** Requests out at once, for the limits and for tests. */
      outstanding: (): number => outstanding.size,
    } as const
  },
}) {}
