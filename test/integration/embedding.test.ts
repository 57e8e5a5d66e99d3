/** The proxy inside another Effect program (SPEC §1.3, §11): the package's own API, real etcd. */
import { connect } from "node:net"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { freePort } from "../../scripts/lib/cluster.mjs"
import {
  ConfiguredDiscovery,
  MemberList,
  ProxyConfig,
  ProxyFromContext,
  resolveProxyConfig,
} from "../../src/index.js"
import { acquireCluster } from "../support/cluster.js"
import { call, form, json } from "../support/http.js"
import { tempDir } from "../support/proxy.js"

/** Whether something accepts connections on 127.0.0.1:port. */
const listening = (port: number) =>
  Effect.promise(
    () =>
      new Promise<boolean>((resolve) => {
        const socket = connect(port, "127.0.0.1")
        socket.once("connect", () => {
          socket.destroy()
          resolve(true)
        })
        socket.once("error", () => resolve(false))
      }),
  )

it.scopedLive(
  "a program builds the configuration as the command does and runs the proxy layer in its own scope",
  () =>
    Effect.gen(function* () {
      const cluster = yield* acquireCluster({ size: 1 })
      const dataDir = yield* tempDir("etcd-proxy-embedded-")
      const port = yield* Effect.promise(() => freePort())
      const url = `http://127.0.0.1:${port}`

      const { config, warnings } = yield* resolveProxyConfig(
        [
          "-listen-client-urls",
          url,
          "--initial-cluster",
          cluster.initialCluster,
          "--data-dir",
          dataDir,
          "--snapshot-count",
          "10000",
        ],
        { ETCD_PROXY_REFRESH_INTERVAL: "1000" },
      ).pipe(Effect.provide(NodeContext.layer))
      expect(Duration.toMillis(config.refreshInterval)).toBe(1_000)
      expect(warnings).toEqual([
        "ignoring etcd member settings that mean nothing to a proxy: --snapshot-count",
      ])

      // The embedding program owns the scope: the proxy lives until the program closes it.
      const scope = yield* Scope.make()
      yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
      const proxy = ProxyFromContext(ConfiguredDiscovery).pipe(
        Layer.provide(Layer.succeed(ProxyConfig, config)),
        Layer.provide(NodeContext.layer),
      )
      const context = yield* Layer.buildWithScope(proxy, scope)
      // The proxy's services are the program's too.
      const memberList = yield* Effect.provide(MemberList, context)
      expect(yield* memberList.peerUrls).toEqual([cluster.members[0]!.peerUrl])

      const put = yield* call(`${url}/v2/keys/embedded`, {
        method: "PUT",
        body: "value=in-process",
        headers: form({}),
      })
      expect(put.status, put.body).toBe(201)
      const get = yield* call(`${url}/v2/keys/embedded`)
      expect((json(get) as { node: { value: string } }).node.value).toBe("in-process")
      const direct = yield* call(`${cluster.members[0]!.clientUrl}/v2/keys/embedded`)
      expect((json(direct) as { node: { value: string } }).node.value).toBe("in-process")

      expect(yield* listening(port)).toBe(true)
      yield* Scope.close(scope, Exit.void)
      expect(yield* listening(port)).toBe(false)
    }),
  60_000,
)
