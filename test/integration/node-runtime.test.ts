/** The suite runs the proxy on the Node it was asked to run on (scripts/test.sh --node, SPEC §11). */
import { execFileSync } from "node:child_process"
import { expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { EtcdCluster } from "../support/cluster.js"
import { call } from "../support/http.js"
import { sample } from "../support/metrics.js"
import { startProxy } from "../support/proxy.js"

layer(EtcdCluster.layer({ size: 1 }), { timeout: 60_000, excludeTestServices: true })(
  "node runtime",
  (it) => {
    it.effect("the test workers run on the Node that scripts/test.sh was given", () =>
      Effect.sync(() => {
        // Set by scripts/test.sh; a bare `npx vitest` runs on whatever node started it.
        const wanted = process.env.NODE_VERSION_UNDER_TEST
        if (wanted !== undefined) expect(process.version).toBe(wanted)
        // The shebang of dist/cli/bin.js and any script started by name find the same node.
        const onPath = execFileSync("node", ["--version"], { encoding: "utf8" }).trim()
        expect(onPath).toBe(process.version)
      }),
    )

    it.scoped("the proxy the tests start runs on the workers' Node and forwards", () =>
      Effect.gen(function* () {
        const cluster = yield* EtcdCluster
        const proxy = yield* startProxy({ args: ["--initial-cluster", cluster.initialCluster] })
        const answer = yield* call(`${proxy.url}/v2/keys/runtime`)
        expect(answer.status).toBe(404)
        expect(answer.headers["x-etcd-index"]).toBeDefined()
        const metrics = (yield* call(`${proxy.url}/metrics`)).body
        const [major, minor, patch] = process.versions.node.split(".") as [string, string, string]
        expect(
          sample(metrics, "nodejs_version_info", { version: process.version, major, minor, patch }),
        ).toBe(1)
      }),
    )
  },
)
