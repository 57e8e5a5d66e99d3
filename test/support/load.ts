/** Steady client load for integration tests: loops that stop by themselves, and what they saw. */
import * as Effect from "effect/Effect"
import { request } from "undici"

export interface Outcome {
  /** When the request started, ms since the load began. */
  readonly at: number
  readonly ms: number
  /** HTTP status, or 0 when no answer came (connection error). */
  readonly status: number
  readonly body: string
}

/** One request with a per-request deadline; a connection error is status 0, never a failure. */
export const attempt = (
  url: string,
  options: {
    readonly method?: string
    readonly body?: string
    readonly headers?: Record<string, string>
    readonly timeoutMs?: number
  } = {},
): Effect.Effect<Omit<Outcome, "at" | "ms">> =>
  Effect.promise(async () => {
    try {
      const response = await request(url, {
        method: (options.method ?? "GET") as "GET",
        ...(options.body === undefined ? {} : { body: options.body }),
        ...(options.headers === undefined ? {} : { headers: options.headers }),
        headersTimeout: options.timeoutMs ?? 30_000,
        bodyTimeout: options.timeoutMs ?? 30_000,
      })
      return { status: response.statusCode, body: await response.body.text() }
    } catch (error) {
      const e = error as { code?: string; message?: string }
      return { status: 0, body: e.code ?? e.message ?? String(error) }
    }
  })

/**
 * Runs `concurrency` loops of `worker` until `stop()` says so (checked before each request) or
 * `deadline` (ms since epoch) passes; returns every outcome with its start time.
 */
export const loop = <A extends Omit<Outcome, "at" | "ms">>(
  concurrency: number,
  stop: () => boolean,
  deadline: number,
  worker: (n: number) => Effect.Effect<A>,
): Effect.Effect<Array<A & { readonly at: number; readonly ms: number }>> =>
  Effect.map(
    Effect.forEach(
      Array.from({ length: concurrency }, (_, w) => w),
      (w) =>
        Effect.gen(function* () {
          const start = Date.now()
          const results: Array<A & { at: number; ms: number }> = []
          for (let i = 0; !stop() && Date.now() < deadline; i++) {
            const begun = Date.now()
            const outcome = yield* worker(w * 1_000_000 + i)
            results.push({ ...outcome, at: begun - start, ms: Date.now() - begun })
          }
          return results
        }),
      { concurrency: "unbounded" },
    ),
    (lists) => lists.flat(),
  )

/** Resolves after `ms`; for pacing load steps, never as an assertion. */
export const pause = (ms: number) => Effect.promise(() => new Promise((r) => setTimeout(r, ms)))
