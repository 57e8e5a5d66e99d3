/** The mode the proxy runs in (SPEC §4), with the pure checks of `domain/Mode` bound to it. */
import * as Effect from "effect/Effect"
import { ProxyConfig } from "../../domain/Config.js"
import type { WriteForbidden } from "../../domain/Errors.js"
import { guardGrpc, guardHttp, guardHttp2 } from "../../domain/Mode.js"

/** The mode the proxy runs in, with its checks bound to it for the hot path. */
export class ModeGuard extends Effect.Service<ModeGuard>()("etcd-proxy/ModeGuard", {
  effect: Effect.gen(function* () {
    const { mode } = yield* ProxyConfig
    return {
      mode,
      checkHttp: (method: string, target: string): WriteForbidden | undefined =>
        guardHttp(mode, method, target),
      checkGrpc: (path: string): WriteForbidden | undefined => guardGrpc(mode, path),
      checkHttp2: (
        method: string,
        path: string,
        contentType: string | undefined,
      ): WriteForbidden | undefined => guardHttp2(mode, method, path, contentType),
    } as const
  }),
}) {}
