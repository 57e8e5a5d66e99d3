/** Forwarding through the built CLI to a real 3-member etcd (SPEC §3.1–3.6, §4, §7, §8.1). */
import { execFile } from "node:child_process"
import { createServer } from "node:http"
import { promisify } from "node:util"
import type { AddressInfo } from "node:net"
import { describe, expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { EtcdCluster } from "../support/cluster.js"
import { b64, call, form, json, rawExchange } from "../support/http.js"
import { runCli, startProxy, tempDir } from "../support/proxy.js"

const execFileAsync = promisify(execFile)

layer(EtcdCluster.layer({ size: 3 }), { timeout: 60_000, excludeTestServices: true })(
  "forwarding to a real cluster",
  (it) => {
    const proxyFor = (args: ReadonlyArray<string> = []) =>
      Effect.flatMap(EtcdCluster, (cluster) =>
        startProxy({ args: ["--initial-cluster", cluster.initialCluster, ...args] }),
      )

    it.scoped("v2 PUT, GET, POST and DELETE round trips keep X-Etcd-Index", () =>
      Effect.gen(function* () {
        const cluster = yield* EtcdCluster
        const proxy = yield* proxyFor()
        const put = yield* call(`${proxy.url}/v2/keys/fwd/a`, {
          method: "PUT",
          body: "value=one",
          headers: form({}),
        })
        expect(put.status).toBe(201)
        const putIndex = (json(put) as { node: { modifiedIndex: number } }).node.modifiedIndex
        expect(put.headers["x-etcd-index"]).toBe(String(putIndex))

        const viaProxy = yield* call(`${proxy.url}/v2/keys/fwd/a`)
        const direct = yield* call(`${cluster.members[0]!.clientUrl}/v2/keys/fwd/a`)
        expect(viaProxy.status).toBe(200)
        expect((json(viaProxy) as { node: { value: string } }).node.value).toBe("one")
        expect(viaProxy.headers["x-etcd-index"]).toBe(direct.headers["x-etcd-index"])
        expect(viaProxy.headers["x-etcd-cluster-id"]).toBe(direct.headers["x-etcd-cluster-id"])

        const posted = yield* call(`${proxy.url}/v2/keys/fwd/queue`, {
          method: "POST",
          body: "value=job",
          headers: form({}),
        })
        expect(posted.status).toBe(201)
        expect((json(posted) as { action: string }).action).toBe("create")

        const deleted = yield* call(`${proxy.url}/v2/keys/fwd/a`, { method: "DELETE" })
        expect(deleted.status).toBe(200)
        expect(Number(deleted.headers["x-etcd-index"])).toBeGreaterThan(putIndex)
        const gone = yield* call(`${cluster.members[1]!.clientUrl}/v2/keys/fwd/a`)
        expect(gone.status).toBe(404)
      }),
    )

    it.scoped("curl with Expect: 100-continue and a 64 KiB value, as etcd users send it", () =>
      Effect.gen(function* () {
        const cluster = yield* EtcdCluster
        const proxy = yield* proxyFor()
        const value = "v".repeat(64 * 1024)
        const out = yield* Effect.promise(() =>
          execFileAsync("curl", [
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "PUT",
            "-H",
            "Expect: 100-continue",
            `${proxy.url}/v2/keys/curl/big`,
            "--data-urlencode",
            `value=${value}`,
          ]),
        )
        expect(out.stdout).toBe("201")
        const stored = json(yield* call(`${cluster.members[2]!.clientUrl}/v2/keys/curl/big`)) as {
          node: { value: string }
        }
        expect(stored.node.value).toBe(value)
      }),
    )

    it.scoped("v3 JSON gateway kv/put then kv/range", () =>
      Effect.gen(function* () {
        const proxy = yield* proxyFor()
        const put = yield* call(`${proxy.url}/v3/kv/put`, {
          method: "POST",
          body: JSON.stringify({ key: b64("gw/k"), value: b64("v3-value") }),
        })
        expect(put.status).toBe(200)
        const range = yield* call(`${proxy.url}/v3/kv/range`, {
          method: "POST",
          body: JSON.stringify({ key: b64("gw/k") }),
        })
        expect(range.status).toBe(200)
        const kvs = (json(range) as { kvs: Array<{ value: string }> }).kvs
        expect(Buffer.from(kvs[0]!.value, "base64").toString()).toBe("v3-value")
      }),
    )

    it.scoped("readonly: writes get the 501 body and never reach the cluster; reads pass", () =>
      Effect.gen(function* () {
        const cluster = yield* EtcdCluster
        const proxy = yield* proxyFor(["--proxy", "readonly"])
        const refused = yield* call(`${proxy.url}/v2/keys/ro/x?prevExist=false`, {
          method: "PUT",
          body: "value=no",
          headers: form({}),
        })
        expect(refused.status).toBe(501)
        expect(refused.headers["content-type"]).toBe("application/json")
        expect(refused.body).toBe(
          JSON.stringify({ message: "httpproxy: read-only proxy refuses PUT /v2/keys/ro/x" }),
        )
        const gatewayWrite = yield* call(`${proxy.url}/v3/kv/put`, {
          method: "POST",
          body: JSON.stringify({ key: b64("ro/y"), value: b64("no") }),
        })
        expect(gatewayWrite.status).toBe(501)
        const dotted = yield* call(`${proxy.url}/v3/kv/range/../put`, {
          method: "POST",
          body: JSON.stringify({ key: b64("ro/z"), value: b64("no") }),
        })
        expect(dotted.status).toBe(501)

        const direct = cluster.members[0]!.clientUrl
        expect((yield* call(`${direct}/v2/keys/ro/x`)).status).toBe(404)
        const range = yield* call(`${direct}/v3/kv/range`, {
          method: "POST",
          body: JSON.stringify({ key: b64("ro/"), range_end: b64("ro0") }),
        })
        expect((json(range) as { count?: string }).count).toBeUndefined()

        yield* call(`${direct}/v2/keys/ro/seen`, {
          method: "PUT",
          body: "value=yes",
          headers: form({}),
        })
        const get = yield* call(`${proxy.url}/v2/keys/ro/seen`)
        expect(get.status).toBe(200)
        const head = yield* call(`${proxy.url}/v2/keys/ro/seen`, { method: "HEAD" })
        expect(head.status).toBe(200)
        const gatewayRead = yield* call(`${proxy.url}/v3/kv/range`, {
          method: "POST",
          body: JSON.stringify({ key: b64("gw/none") }),
        })
        expect(gatewayRead.status).toBe(200)
      }),
    )

    it.scoped("413 for a body over --max-request-bytes; nothing is written", () =>
      Effect.gen(function* () {
        const cluster = yield* EtcdCluster
        const proxy = yield* proxyFor(["--max-request-bytes", "1024"])
        const big = yield* call(`${proxy.url}/v2/keys/big`, {
          method: "PUT",
          body: `value=${"x".repeat(4096)}`,
          headers: form({}),
        })
        expect(big.status).toBe(413)
        expect(big.headers["content-type"]).toBe("application/json")
        expect((json(big) as { message: string }).message).toContain("1024")
        expect((yield* call(`${cluster.members[0]!.clientUrl}/v2/keys/big`)).status).toBe(404)
        const small = yield* call(`${proxy.url}/v2/keys/small`, {
          method: "PUT",
          body: "value=ok",
          headers: form({}),
        })
        expect(small.status).toBe(201)
      }),
    )

    it.scoped("an absolute-form target or a Host header never reaches another host", () =>
      Effect.gen(function* () {
        let canaryHits = 0
        const canary = createServer((_req, res) => {
          canaryHits += 1
          res.end("canary")
        })
        yield* Effect.acquireRelease(
          Effect.promise(
            () => new Promise<void>((resolve) => canary.listen(0, "127.0.0.1", resolve)),
          ),
          () => Effect.promise(() => new Promise<void>((resolve) => canary.close(() => resolve()))),
        )
        const canaryPort = (canary.address() as AddressInfo).port
        const proxy = yield* proxyFor()
        const answer = yield* rawExchange(
          proxy.port,
          `GET http://127.0.0.1:${canaryPort}/version HTTP/1.1\r\nHost: 127.0.0.1:${canaryPort}\r\nConnection: close\r\n\r\n`,
        )
        expect(answer).toMatch(/^HTTP\/1\.1 200/)
        expect(answer).toContain("etcdserver")
        const hostOnly = yield* call(`${proxy.url}/version`, {
          headers: { host: `127.0.0.1:${canaryPort}` },
        })
        expect(hostOnly.body).toContain("etcdserver")
        expect(canaryHits).toBe(0)
      }),
    )

    it.scoped("the config path lists endpoints, mode and members; other methods get 405", () =>
      Effect.gen(function* () {
        const cluster = yield* EtcdCluster
        const proxy = yield* proxyFor(["--proxy", "readonly"])
        const answer = yield* call(`${proxy.url}/v2/config/local/proxy`)
        expect(answer.headers["content-type"]).toBe("application/json")
        const body = json(answer) as {
          endpoints: Array<string>
          mode: string
          members: Array<{ name: string; clientURLs: Array<{ url: string; state: string }> }>
          discovery: { state: string }
        }
        expect([...body.endpoints].sort()).toEqual(cluster.clientUrls().sort())
        expect(body.mode).toBe("readonly")
        expect(body.discovery).toEqual({ state: "complete" })
        expect(body.members.map((m) => m.name).sort()).toEqual(["m1", "m2", "m3"])
        for (const member of body.members) {
          expect(member.clientURLs).toEqual([
            {
              url: cluster.members.find((m) => m.name === member.name)!.clientUrl,
              state: "available",
            },
          ])
        }
        const post = yield* call(`${proxy.url}/v2/config/local/proxy`, {
          method: "POST",
          body: "{}",
        })
        expect(post.status).toBe(405)
        expect(post.headers["allow"]).toBe("GET")
      }),
    )

    it.scoped("--cors: the proxy answers pre-flight itself and sets CORS headers once", () =>
      Effect.gen(function* () {
        const proxy = yield* proxyFor(["--cors", "http://app.example", "--proxy", "readonly"])
        const preflight = yield* call(`${proxy.url}/v2/keys/c`, {
          method: "OPTIONS",
          headers: { origin: "http://app.example", "access-control-request-method": "PUT" },
        })
        expect(preflight.status).toBe(200)
        expect(preflight.headers["access-control-allow-origin"]).toBe("http://app.example")
        expect(preflight.headers["access-control-allow-methods"]).toContain("PUT")
        const stranger = yield* call(`${proxy.url}/v2/keys/c`, {
          method: "OPTIONS",
          headers: { origin: "http://evil.example" },
        })
        expect(stranger.status).toBe(403)
        expect(stranger.headers["access-control-allow-origin"]).toBeUndefined()
        // Members answer with their own `*`; through the proxy only the configured origin shows.
        const get = yield* call(`${proxy.url}/v2/keys/`, {
          headers: { origin: "http://app.example" },
        })
        expect(get.status).toBe(200)
        expect(get.headers["access-control-allow-origin"]).toBe("http://app.example")
      }),
    )

    it.scoped("the saved cluster file wins over a bogus --initial-cluster on restart", () =>
      Effect.gen(function* () {
        const cluster = yield* EtcdCluster
        const dataDir = yield* tempDir("etcd-proxy-saved-")
        yield* Effect.scoped(
          Effect.gen(function* () {
            const first = yield* startProxy({
              args: ["--initial-cluster", cluster.initialCluster],
              dataDir,
            })
            expect((yield* call(`${first.url}/version`)).status).toBe(200)
          }),
        )
        const { readFileSync, statSync } = yield* Effect.promise(() => import("node:fs"))
        const saved = readFileSync(`${dataDir}/proxy/cluster`, "utf8")
        expect(saved).toBe(
          JSON.stringify({ PeerURLs: cluster.members.map((m) => m.peerUrl).sort() }),
        )
        expect(statSync(`${dataDir}/proxy`).mode & 0o777).toBe(0o700)
        expect(statSync(`${dataDir}/proxy/cluster`).mode & 0o777).toBe(0o600)

        const second = yield* startProxy({
          args: ["--initial-cluster", "bogus=http://127.0.0.1:9"],
          dataDir,
        })
        const answer = yield* call(`${second.url}/v2/keys/`)
        expect(answer.status).toBe(200)
        expect(second.output()).toContain("saved cluster file")
      }),
    )

    it.scoped("a second proxy on the same data dir exits 1 with a clear message", () =>
      Effect.gen(function* () {
        const cluster = yield* EtcdCluster
        const dataDir = yield* tempDir("etcd-proxy-lock-")
        const first = yield* startProxy({
          args: ["--initial-cluster", cluster.initialCluster],
          dataDir,
        })
        const second = yield* runCli([
          "--listen-client-urls",
          "http://127.0.0.1:0",
          "--initial-cluster",
          cluster.initialCluster,
          "--data-dir",
          dataDir,
        ])
        expect(second.code).toBe(1)
        expect(second.output).toContain(`in use by another etcd-proxy (pid ${first.child.pid})`)
        expect((yield* call(`${first.url}/version`)).status).toBe(200)
      }),
    )

    it.scoped("refuses a data dir that belongs to an etcd member", () =>
      Effect.gen(function* () {
        const cluster = yield* EtcdCluster
        const result = yield* runCli([
          "--listen-client-urls",
          "http://127.0.0.1:0",
          "--initial-cluster",
          cluster.initialCluster,
          "--data-dir",
          cluster.members[0]!.dataDir,
        ])
        expect(result.code).toBe(1)
        expect(result.output).toContain("belongs to an etcd member")
      }),
    )
  },
)

describe("command line", () => {
  layer(EtcdCluster.layer({ size: 1 }), { timeout: 60_000, excludeTestServices: true })(
    "flags",
    (it) => {
      it.scoped("etcd's single-dash flags and ETCD_* variables start a working proxy", () =>
        Effect.gen(function* () {
          const cluster = yield* EtcdCluster
          const dataDir = yield* tempDir("etcd-proxy-flags-")
          const { freePort } = yield* Effect.promise(() => import("../../scripts/lib/cluster.mjs"))
          const port = yield* Effect.promise(() => freePort())
          const proxy = yield* startProxy({
            defaults: false,
            port,
            args: ["-proxy", "readonly", "-listen-client-urls", `http://127.0.0.1:${port}`],
            env: { ETCD_INITIAL_CLUSTER: cluster.initialCluster, ETCD_DATA_DIR: dataDir },
          })
          const config = json(yield* call(`${proxy.url}/v2/config/local/proxy`)) as { mode: string }
          expect(config.mode).toBe("readonly")
        }),
      )
    },
  )
})
