/**
 * Gives back the memory a burst of abusive or heavy client connections made the proxy allocate
 * (SPEC §3.13), for every front: one full garbage collection once such connections have stopped
 * ending for a while.
 */
import * as inspector from "node:inspector"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Runtime from "effect/Runtime"
import { limits } from "../../domain/Limits.js"

interface BurstRelease {
  /** A costly connection ended: collect once no other has ended for a while. */
  readonly ended: () => void
  readonly close: () => void
}

/**
 * Once a burst's connections end, what an abusive or stalled client cost (thousands of stream
 * objects, the buffers of its stalled streams or uploads) is garbage, but V8 grew its heap for it
 * and an idle process runs no collection that would give the pages back: RSS stayed 20–40 MB up
 * after the attacks of issue 12. One full collection when the burst is over (`quietMs` after the last one ended)
 * returns it. V8 has no public call for that but the inspector protocol's, which every official
 * Node build carries; `report` is told the outcome, or that the inspector is missing.
 */
const burstRelease = (
  quietMs: number,
  report: (outcome: { readonly rssBefore: number; readonly rssAfter: number } | Error) => void,
): BurstRelease => {
  let session: inspector.Session | undefined
  let unavailable = false
  let timer: NodeJS.Timeout | undefined
  const collect = () => {
    timer = undefined
    if (unavailable) return
    const rssBefore = process.memoryUsage.rss()
    try {
      if (session === undefined) {
        session = new inspector.Session()
        session.connect()
      }
      session.post("HeapProfiler.collectGarbage", (error) =>
        report(error ?? { rssBefore, rssAfter: process.memoryUsage.rss() }),
      )
    } catch (error) {
      unavailable = true
      report(error instanceof Error ? error : new Error(String(error)))
    }
  }
  return {
    ended: () => {
      if (timer !== undefined) {
        timer.refresh()
        return
      }
      timer = setTimeout(collect, quietMs)
      timer.unref()
    },
    close: () => {
      if (timer !== undefined) clearTimeout(timer)
      session?.disconnect()
    },
  }
}

export class MemoryRelease extends Effect.Service<MemoryRelease>()("etcd-proxy/MemoryRelease", {
  scoped: Effect.gen(function* () {
    const runtime = yield* Effect.runtime<never>()
    const release = burstRelease(Duration.toMillis(limits.burstQuiet), (outcome) =>
      Runtime.runFork(runtime)(
        outcome instanceof Error
          ? Effect.logWarning("cannot give memory back after a burst").pipe(
              Effect.annotateLogs({ error: outcome.message }),
            )
          : Effect.logDebug("memory given back after a burst").pipe(
              Effect.annotateLogs({
                rssBefore: `${Math.round(outcome.rssBefore / 2 ** 20)}MiB`,
                rssAfter: `${Math.round(outcome.rssAfter / 2 ** 20)}MiB`,
              }),
            ),
      ),
    )
    yield* Effect.addFinalizer(() => Effect.sync(() => release.close()))
    return {
      /** A connection that cost much has ended: collect once such endings have stopped. */
      burstEnded: release.ended,
    } as const
  }),
}) {}
