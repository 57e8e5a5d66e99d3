/** The npm etcd3 client in integration tests. */
import * as Effect from "effect/Effect"
import type { Etcd3 } from "etcd3"

/** Opens a watch on `key` (cancelled with the scope); the promise gives the first PUT's value. */
export const firstPut = (client: Etcd3, key: string) =>
  Effect.map(
    Effect.acquireRelease(
      Effect.promise(() => client.watch().key(key).create()),
      (watcher) => Effect.promise(() => watcher.cancel()),
    ),
    (watcher) =>
      new Promise<string>((resolve) => watcher.on("put", (kv) => resolve(kv.value.toString()))),
  )
