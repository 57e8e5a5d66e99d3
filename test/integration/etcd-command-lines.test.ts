/**
 * Existing etcd proxy set-ups start this proxy unchanged (SPEC §2): the command line of etcd's
 * proxy guide, and a unit file's `ETCD_*` environment with member settings in it.
 */
import { existsSync } from "node:fs"
import { join } from "node:path"
import { expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { freePort } from "../../scripts/lib/cluster.mjs"
import { EtcdCluster } from "../support/cluster.js"
import { call, form, json } from "../support/http.js"
import { startProxy, tempDir } from "../support/proxy.js"
import { outputContains } from "../support/wait.js"

/** A v2 write and the read of it through the proxy: it forwards to the real cluster. */
const roundTrip = (url: string, key: string) =>
  Effect.gen(function* () {
    const put = yield* call(`${url}/v2/keys/${key}`, {
      method: "PUT",
      body: `value=${key}`,
      headers: form({}),
    })
    expect(put.status, put.body).toBe(201)
    const get = yield* call(`${url}/v2/keys/${key}`)
    expect(get.status).toBe(200)
    expect((json(get) as { node: { value: string } }).node.value).toBe(key)
  })

/** The proxy's one warning about member settings: every name in it, and no second such line. */
const expectOneIgnoredWarning = (output: string, names: ReadonlyArray<string>) => {
  const lines = output.split("\n").filter((line) => line.includes("ignoring etcd member settings"))
  expect(lines, output).toHaveLength(1)
  for (const name of names) expect(lines[0], name).toContain(name)
}

layer(EtcdCluster.layer({ size: 3 }), { excludeTestServices: true, timeout: "90 seconds" })(
  "etcd's command lines",
  (it) => {
    it.scoped(
      "the proxy guide's command line, single dashes and all, runs a read-write proxy",
      () =>
        Effect.gen(function* () {
          const cluster = yield* EtcdCluster
          // The guide gives no --data-dir: etcd's default, default.etcd, is under the working dir.
          const cwd = yield* tempDir("etcd-proxy-guide-")
          const port = yield* Effect.promise(() => freePort())
          const proxy = yield* startProxy({
            port,
            cwd,
            defaults: false,
            args: [
              "-proxy",
              "on",
              "-listen-client-urls",
              `http://127.0.0.1:${port}`,
              "-initial-cluster",
              cluster.members.map((m) => `${m.name}=${m.peerUrl}`).join(","),
            ],
          })
          yield* roundTrip(proxy.url, "guide")
          const view = json(yield* call(`${proxy.url}/v2/config/local/proxy`)) as {
            mode: string
            endpoints: Array<string>
          }
          expect(view.mode).toBe("readwrite")
          expect([...view.endpoints].sort()).toEqual(cluster.clientUrls().sort())
          expect(existsSync(join(cwd, "default.etcd", "proxy", "lock"))).toBe(true)
          expect(proxy.output()).not.toContain("ignoring etcd member settings")
        }),
    )

    it.scoped(
      "a unit file's ETCD_* environment with member settings starts it, naming those in one warning",
      () =>
        Effect.gen(function* () {
          const cluster = yield* EtcdCluster
          const dataDir = yield* tempDir("etcd-proxy-unit-")
          const port = yield* Effect.promise(() => freePort())
          const member = {
            ETCD_INITIAL_CLUSTER_TOKEN: "etcd-cluster-1",
            ETCD_INITIAL_CLUSTER_STATE: "new",
            ETCD_ADVERTISE_CLIENT_URLS: `http://127.0.0.1:${port}`,
            ETCD_LISTEN_PEER_URLS: "http://127.0.0.1:2380",
            ETCD_INITIAL_ADVERTISE_PEER_URLS: "http://127.0.0.1:2380",
            ETCD_SNAPSHOT_COUNT: "10000",
            ETCD_HEARTBEAT_INTERVAL: "100",
            ETCD_ELECTION_TIMEOUT: "1000",
            ETCD_ENABLE_V2: "true",
            ETCD_ENABLE_PPROF: "true",
            ETCD_AUTO_COMPACTION_RETENTION: "1",
            ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL: "10m",
          }
          const proxy = yield* startProxy({
            port,
            defaults: false,
            args: [],
            env: {
              ...member,
              ETCD_NAME: "proxy0",
              ETCD_PROXY: "on",
              ETCD_DATA_DIR: dataDir,
              ETCD_LISTEN_CLIENT_URLS: `http://127.0.0.1:${port}`,
              ETCD_INITIAL_CLUSTER: cluster.members.map((m) => `${m.name}=${m.peerUrl}`).join(","),
              ETCD_PROXY_REFRESH_INTERVAL: "30000",
              ETCD_PROXY_DIAL_TIMEOUT: "1000",
              ETCD_LOGGER: "zap",
              ETCD_LOG_LEVEL: "info",
              ETCD_LOG_OUTPUTS: "default",
              ETCD_CLIENT_CERT_AUTH: "false",
              ETCD_MAX_REQUEST_BYTES: "1572864",
            },
          })
          yield* roundTrip(proxy.url, "unit-file")
          yield* outputContains("the proxy", proxy.output, "ignoring etcd member settings")
          expectOneIgnoredWarning(proxy.output(), Object.keys(member))
          expect(proxy.output()).not.toContain("unrecognized environment variable")
          expect(proxy.output()).not.toContain("ETCD_PROXY_REFRESH_INTERVAL")
        }),
    )

    it.scoped(
      "an etcd member's command line made a proxy: member flags accepted, the proxy's own used",
      () =>
        Effect.gen(function* () {
          const cluster = yield* EtcdCluster
          const dataDir = yield* tempDir("etcd-proxy-member-line-")
          const port = yield* Effect.promise(() => freePort())
          const proxy = yield* startProxy({
            port,
            dataDir,
            args: [
              "--proxy=readonly",
              "--initial-cluster",
              cluster.members.map((m) => `${m.name}=${m.peerUrl}`).join(","),
              "--initial-cluster-token",
              "tok",
              "--initial-cluster-state=existing",
              "--advertise-client-urls",
              `http://127.0.0.1:${port}`,
              "--logger",
              "zap",
              "--enable-pprof",
              "-enable-v2=true",
              "--experimental-initial-corrupt-check",
              "--max-concurrent-streams",
              "100",
              "--tls-min-version",
              "TLS1.2",
              "--name",
              "proxy1",
            ],
          })
          const refused = yield* call(`${proxy.url}/v2/keys/member-line`, {
            method: "PUT",
            body: "value=x",
            headers: form({}),
          })
          expect(refused.status).toBe(501)
          expect((yield* call(`${proxy.url}/v2/keys/member-line`)).status).toBe(404)
          yield* outputContains("the proxy", proxy.output, "ignoring etcd member settings")
          expectOneIgnoredWarning(proxy.output(), [
            "--initial-cluster-token",
            "--initial-cluster-state",
            "--advertise-client-urls",
            "--enable-pprof",
            "--enable-v2",
            "--experimental-initial-corrupt-check",
          ])
          expect(proxy.output()).not.toMatch(
            /ignoring[^\n]*--(logger|max-concurrent-streams|name)\b/,
          )
        }),
    )
  },
)
