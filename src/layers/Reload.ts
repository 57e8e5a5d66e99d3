/**
 * `SIGHUP` re-reads the TLS files (SPEC §8.7) instead of killing the process, Node's default for
 * the signal. Held for the proxy's whole life, drain included, so a reload during shutdown is harmless.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Runtime from "effect/Runtime"
import { TlsMaterial } from "../services/TlsMaterial.js"

export const ReloadOnSighup: Layer.Layer<never, never, TlsMaterial> = Layer.scopedDiscard(
  Effect.gen(function* () {
    const tls = yield* TlsMaterial
    const run = Runtime.runFork(yield* Effect.runtime<never>())
    const onHangup = () => {
      run(Effect.logInfo("SIGHUP: re-reading the TLS files").pipe(Effect.zipRight(tls.reload)))
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => process.on("SIGHUP", onHangup)),
      () => Effect.sync(() => process.off("SIGHUP", onHangup)),
    )
  }),
)
