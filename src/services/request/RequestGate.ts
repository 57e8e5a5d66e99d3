/**
 * The front door every request passes, whatever protocol brought it (SPEC §11): it feeds the
 * pure `admit` decision with what the proxy knows right now, and counts what is in flight,
 * overall and per client address, for the limits.
 */
import * as Effect from "effect/Effect"
import {
  admit,
  type Admission,
  type Incoming,
  type LoopClaim,
  type Situation,
} from "../../domain/Admission.js"
import { ProxyConfig } from "../../domain/Config.js"
import { limits } from "../../domain/Limits.js"
import { Discovery } from "../cluster/Discovery.js"
import { ModeGuard } from "./ModeGuard.js"
import { ProxyIdentity } from "./ProxyIdentity.js"

export class RequestGate extends Effect.Service<RequestGate>()("etcd-proxy/RequestGate", {
  effect: Effect.gen(function* () {
    const config = yield* ProxyConfig
    const { mode } = yield* ModeGuard
    const discovery = yield* Discovery
    const identity = yield* ProxyIdentity
    const cors = config.cors.length > 0

    let inFlight = 0
    const perClient = new Map<string, number>()

    const situation = (client: string): Situation => ({
      mode,
      cors,
      discovery: discovery.status(),
      maxRequestBytes: config.maxRequestBytes,
      inFlight,
      inFlightLimit: limits.inFlight,
      clientInFlight: perClient.get(client) ?? 0,
      activeClients: perClient.size + (perClient.has(client) ? 0 : 1),
    })

    return {
      mode,
      /** The decision for one request from `client` (its address). */
      admit: (
        method: string,
        target: string,
        grpc: boolean,
        contentLength: number | undefined,
        via: string | undefined,
        client: string,
      ): Admission => {
        const loop: LoopClaim = identity.claim(via)
        const incoming: Incoming = { method, target, grpc, contentLength, loop }
        return admit(incoming, situation(client))
      },
      /** A forwarded request starts holding a slot; `leave` gives it back, exactly once. */
      enter: (client: string): void => {
        inFlight += 1
        perClient.set(client, (perClient.get(client) ?? 0) + 1)
      },
      leave: (client: string): void => {
        inFlight -= 1
        const held = (perClient.get(client) ?? 1) - 1
        if (held === 0) perClient.delete(client)
        else perClient.set(client, held)
      },
      inFlight: (): number => inFlight,
    } as const
  }),
}) {}
