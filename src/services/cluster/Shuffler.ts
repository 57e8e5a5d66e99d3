/** Reshuffles the endpoint order on its own schedule (SPEC §5.4), so proxies spread their load. */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { ProxyConfig } from "../../domain/Config.js"
import { MemberList, shuffled } from "./MemberList.js"

export class Shuffler extends Effect.Service<Shuffler>()("etcd-proxy/Shuffler", {
  scoped: Effect.gen(function* () {
    const { shuffleInterval } = yield* ProxyConfig
    const members = yield* MemberList
    const shuffleNow = members.reorder(shuffled)
    if (Duration.greaterThan(shuffleInterval, Duration.zero)) {
      yield* Effect.forkScoped(Effect.schedule(shuffleNow, Schedule.spaced(shuffleInterval)))
    }
    return { shuffleNow } as const
  }),
}) {}
