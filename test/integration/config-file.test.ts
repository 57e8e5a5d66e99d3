/** `--config-file` through the built CLI against a real member (SPEC §2): YAML keys are the flag names. */
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { freePort } from "../../scripts/lib/cluster.mjs"
import { EtcdCluster } from "../support/cluster.js"
import { call, json } from "../support/http.js"
import { runCli, startProxy, tempDir } from "../support/proxy.js"

/** A write of a fresh key: 201 when forwarded, 501 from a read-only proxy. */
const put = (url: string, value: string) =>
  call(`${url}/v2/keys/cfg-${value}`, {
    method: "PUT",
    body: `value=${value}`,
    headers: { "content-type": "application/x-www-form-urlencoded" },
  })

/** A config file for a proxy on a free port with its own data dir; `body` holds the other keys. */
const configFile = (body: (port: number, dataDir: string) => string) =>
  Effect.gen(function* () {
    const dir = yield* tempDir("etcd-proxy-config-")
    const port = yield* Effect.promise(() => freePort())
    const file = join(dir, "proxy.yaml")
    writeFileSync(file, body(port, join(dir, "data")))
    return { file, port, url: `http://127.0.0.1:${port}` }
  })

layer(EtcdCluster.layer({ size: 1 }), { excludeTestServices: true, timeout: "60 seconds" })(
  "config file",
  (it) => {
    it.scoped("proxy: on, unquoted, runs a read-write proxy from the file alone", () =>
      Effect.gen(function* () {
        const cluster = yield* EtcdCluster
        const config = yield* configFile(
          (port, dataDir) => `# etcd-proxy, as etcd's own config file would say it
proxy: on
listen-client-urls:
  - http://127.0.0.1:${port}
initial-cluster: ${cluster.initialCluster}
data-dir: ${dataDir}
proxy-refresh-interval: 1000
`,
        )
        const proxy = yield* startProxy({
          port: config.port,
          defaults: false,
          args: ["--config-file", config.file],
        })
        expect((yield* put(proxy.url, "rw")).status).toBe(201)
        const view = json(yield* call(`${proxy.url}/v2/config/local/proxy`)) as { mode: string }
        expect(view.mode).toBe("readwrite")
      }),
    )

    it.scoped("YAML 1.1 spells on and off as booleans: both spellings are accepted", () =>
      Effect.gen(function* () {
        const cluster = yield* EtcdCluster
        const config = yield* configFile(
          (port, dataDir) => `%YAML 1.1
---
proxy: on
listen-client-urls: http://127.0.0.1:${port}
initial-cluster: ${cluster.initialCluster}
data-dir: ${dataDir}
`,
        )
        const proxy = yield* startProxy({
          port: config.port,
          defaults: false,
          args: ["--config-file", config.file],
        })
        expect((yield* put(proxy.url, "yaml11")).status).toBe(201)

        for (const header of ["%YAML 1.1\n---\n", ""]) {
          const off = yield* configFile(
            (port, dataDir) => `${header}proxy: off
listen-client-urls: http://127.0.0.1:${port}
initial-cluster: ${cluster.initialCluster}
data-dir: ${dataDir}
`,
          )
          const refused = yield* runCli(["--config-file", off.file])
          expect(refused.code).toBe(2)
          expect(refused.output).toMatch(
            /^etcd-proxy: invalid value "(off|false)" for proxy in \S+: etcd-proxy only proxies/,
          )
        }
      }),
    )

    it.scoped(
      "with a config file, other flags and ETCD_* are ignored (and said so); ETCD_CONFIG_FILE works too",
      () =>
        Effect.gen(function* () {
          const cluster = yield* EtcdCluster
          const readonlyYaml = (port: number, dataDir: string) => `proxy: readonly
listen-client-urls: http://127.0.0.1:${port}
initial-cluster: ${cluster.initialCluster}
data-dir: ${dataDir}
`
          const config = yield* configFile(readonlyYaml)
          const proxy = yield* startProxy({
            port: config.port,
            defaults: false,
            args: ["--config-file", config.file, "--proxy", "on"],
            env: { ETCD_PROXY_REFRESH_INTERVAL: "1000" },
          })
          const refused = yield* put(proxy.url, "ro")
          expect(refused.status).toBe(501)
          expect(proxy.output()).toContain(
            "--config-file is set: ignoring --proxy, ETCD_PROXY_REFRESH_INTERVAL, as etcd does",
          )

          const second = yield* configFile(readonlyYaml)
          const fromEnv = yield* startProxy({
            port: second.port,
            defaults: false,
            args: [],
            env: { ETCD_CONFIG_FILE: second.file, ETCD_PROXY: "on" },
          })
          expect((yield* put(fromEnv.url, "env")).status).toBe(501)
          expect(fromEnv.output()).toContain(
            "ETCD_CONFIG_FILE is set: ignoring ETCD_PROXY, as etcd does",
          )
        }),
    )

    it.scoped("etcd's own config file, member keys and TLS sections included, runs the proxy", () =>
      Effect.gen(function* () {
        const cluster = yield* EtcdCluster
        // The keys of etcd 3.5's etcd.conf.yml.sample, set for a proxy.
        const config = yield* configFile(
          (port, dataDir) => `name: 'proxy0'
data-dir: ${dataDir}
wal-dir:
snapshot-count: 10000
heartbeat-interval: 100
election-timeout: 1000
quota-backend-bytes: 0
listen-peer-urls: http://localhost:2380
listen-client-urls: http://127.0.0.1:${port}
max-snapshots: 5
max-wals: 5
cors:
initial-advertise-peer-urls: http://localhost:2380
advertise-client-urls: http://127.0.0.1:${port}
discovery:
discovery-fallback: 'proxy'
discovery-proxy:
discovery-srv:
initial-cluster: ${cluster.initialCluster}
initial-cluster-token: 'etcd-cluster'
initial-cluster-state: 'new'
strict-reconfig-check: false
enable-v2: true
enable-pprof: true
proxy: 'on'
proxy-failure-wait: 5000
proxy-refresh-interval: 30000
proxy-dial-timeout: 1000
proxy-write-timeout: 5000
proxy-read-timeout: 0
client-transport-security:
  cert-file:
  key-file:
  client-cert-auth: false
  trusted-ca-file:
  auto-tls: false
peer-transport-security:
  cert-file:
  key-file:
  client-cert-auth: false
  trusted-ca-file:
  auto-tls: false
  allowed-cn:
  allowed-hostname:
self-signed-cert-validity: 1
log-level: debug
logger: zap
log-outputs: [stderr]
force-new-cluster: false
auto-compaction-mode: periodic
auto-compaction-retention: "1"
`,
        )
        const proxy = yield* startProxy({
          port: config.port,
          defaults: false,
          args: ["--config-file", config.file],
        })
        expect((yield* put(proxy.url, "sample")).status).toBe(201)
        const warning = proxy
          .output()
          .split("\n")
          .filter((line) => line.includes("ignoring etcd member settings"))
        expect(warning).toHaveLength(1)
        for (const key of [
          "snapshot-count",
          "initial-cluster-token",
          "enable-v2",
          "force-new-cluster",
          "peer-transport-security.client-cert-auth",
        ]) {
          expect(warning[0], key).toContain(`${key} in ${config.file}`)
        }
        expect(proxy.output()).not.toContain("is not an etcd or etcd-proxy setting")
      }),
    )

    it.scoped("a bad or missing config file exits 2 naming the file", () =>
      Effect.gen(function* () {
        const broken = yield* configFile(() => "proxy: [on\n")
        const bad = yield* runCli(["--config-file", broken.file])
        expect(bad.code).toBe(2)
        expect(bad.output).toContain(`--config-file ${broken.file} is not valid YAML`)

        const missing = yield* runCli(["--config-file", "/nonexistent/proxy.yaml"])
        expect(missing.code).toBe(2)
        expect(missing.output).toContain("cannot read --config-file /nonexistent/proxy.yaml")

        const unknown = yield* configFile(() => "proxy: sometimes\n")
        const value = yield* runCli(["--config-file", unknown.file])
        expect(value.code).toBe(2)
        expect(value.output).toBe(
          `etcd-proxy: invalid value "sometimes" for proxy in ${unknown.file}: expected on or readonly\n`,
        )
      }),
    )
  },
)
