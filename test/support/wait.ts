/** Polling helpers for integration tests: wait for a condition on real processes, bounded in time. */
import * as Effect from "effect/Effect"

/**
 * Runs `probe` every `intervalMs` until `done` holds for its result; fails after `timeoutMs` with
 * `what` and the last result, so a failing test says what it was waiting for.
 */
export const eventually = <A>(
  what: string,
  probe: Effect.Effect<A>,
  done: (a: A) => boolean,
  options: { readonly timeoutMs?: number; readonly intervalMs?: number } = {},
): Effect.Effect<A, Error> =>
  Effect.gen(function* () {
    const deadline = Date.now() + (options.timeoutMs ?? 20_000)
    while (true) {
      const result = yield* probe
      if (done(result)) return result
      if (Date.now() > deadline) {
        return yield* Effect.fail(
          new Error(`timed out waiting for ${what}; last: ${JSON.stringify(result)}`),
        )
      }
      yield* Effect.sleep(`${options.intervalMs ?? 100} millis`)
    }
  })

/** Waits until `output()` contains `text`. */
export const outputContains = (
  what: string,
  output: () => string,
  text: string | RegExp,
  timeoutMs = 20_000,
): Effect.Effect<void, Error> =>
  eventually(
    `${what} to print ${String(text)}`,
    Effect.sync(() => output()),
    (out) => (typeof text === "string" ? out.includes(text) : text.test(out)),
    { timeoutMs },
  ).pipe(
    Effect.asVoid,
    Effect.mapError(
      (error) => new Error(`${error.message.slice(0, 200)}\n${output().slice(-3_000)}`),
    ),
  )
