/** Shutdown's bounded wait for in-flight work (SPEC §8.5), shared by the HTTP/1 and HTTP/2 paths. */
import type { EventEmitter } from "node:events"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

/**
 * Succeeds once `live` is empty, each item reporting through its emitter's `close` event, or
 * after `limit`. Finalizers are uninterruptible; the wait opts back in so its bound can fire.
 */
export const awaitClosed = <A>(
  live: ReadonlySet<A>,
  emitterOf: (item: A) => EventEmitter,
  limit: Duration.DurationInput,
): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    let done = false
    const check = () => {
      if (done || live.size > 0) return
      done = true
      resume(Effect.void)
    }
    for (const item of live) emitterOf(item).once("close", check)
    check()
  }).pipe(Effect.interruptible, Effect.timeout(limit), Effect.ignore)
