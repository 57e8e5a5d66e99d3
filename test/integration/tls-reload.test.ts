/**
 * SIGHUP re-reads the TLS files (SPEC §8.7) on the built CLI: new handshakes get the renewed
 * certificate while a connection opened before keeps working; a broken file keeps the old
 * material and the error names it; the proxy never dies of it. Its JSON log lines have etcd's
 * zap shape (§8.4). A real etcd member behind, certificates made with openssl.
 */
import { X509Certificate } from "node:crypto"
import { copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs"
import * as http from "node:http"
import * as https from "node:https"
import { join } from "node:path"
import type { TLSSocket } from "node:tls"
import { expect, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { freePort } from "../../scripts/lib/cluster.mjs"
import { EtcdCluster } from "../support/cluster.js"
import { startProxy, tempDir } from "../support/proxy.js"
import { issueLeaf, testCerts, type TestCerts } from "../support/tls.js"
import { outputContains } from "../support/wait.js"

class Certs extends Context.Tag("test/Certs")<Certs, TestCerts>() {}

const environment = Layer.merge(EtcdCluster.layer({ size: 1 }), Layer.scoped(Certs, testCerts))

const fingerprint = (pemFile: string) => new X509Certificate(readFileSync(pemFile)).fingerprint256

/** A proxy on plain http (for the harness and for writes) and https with a copy of the member pair. */
const reloadableProxy = Effect.gen(function* () {
  const c = yield* Certs
  const cluster = yield* EtcdCluster
  const dir = yield* tempDir("etcd-proxy-reload-")
  const served = { cert: join(dir, "server.pem"), key: join(dir, "server.key") }
  copyFileSync(c.cert, served.cert)
  copyFileSync(c.key, served.key)
  const port = yield* Effect.promise(() => freePort())
  const tlsPort = yield* Effect.promise(() => freePort())
  const dataDir = join(dir, "data")
  const proxy = yield* startProxy({
    port,
    defaults: false,
    args: [
      "--listen-client-urls",
      `http://127.0.0.1:${port},https://127.0.0.1:${tlsPort}`,
      "--data-dir",
      dataDir,
      "--initial-cluster",
      cluster.initialCluster,
      "--cert-file",
      served.cert,
      "--key-file",
      served.key,
      "--log-format",
      "json",
    ],
  })
  /** Sends SIGHUP and waits until the proxy logged the end of its `reloads`-th reload. */
  const hangUp = (reloads: number) =>
    Effect.gen(function* () {
      proxy.child.kill("SIGHUP")
      yield* outputContains(
        `reload ${reloads}`,
        proxy.output,
        new RegExp(`("msg":"TLS (material reloaded|settings rejected)[^]*){${reloads}}`),
      )
    })
  return { ...proxy, served, dataDir, httpsUrl: `https://127.0.0.1:${tlsPort}`, hangUp }
})

/** The certificate a fresh TLS connection is shown, and the answer to a GET over it. */
const freshGet = (url: string, ca: string) =>
  Effect.promise(
    () =>
      new Promise<{ status: number; fingerprint: string }>((resolve, reject) => {
        const req = https.get(url, { ca: readFileSync(ca), agent: false }, (res) => {
          const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256
          res.resume()
          res.on("end", () => resolve({ status: res.statusCode!, fingerprint }))
        })
        req.on("error", reject)
      }),
  )

/** A v2 long poll over TLS, open once its headers arrived; `body` resolves with the event. */
const openWatch = (url: string, ca: string) =>
  Effect.promise(
    () =>
      new Promise<{ fingerprint: string; body: Promise<string> }>((resolve, reject) => {
        const req = https.get(url, { ca: readFileSync(ca), agent: false }, (res) => {
          const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256
          let text = ""
          const body = new Promise<string>((done, fail) => {
            res.on("data", (chunk: Buffer) => (text += chunk.toString()))
            res.on("end", () => done(text))
            res.on("error", fail)
          })
          resolve({ fingerprint, body })
        })
        req.on("error", reject)
      }),
  )

const put = (url: string) =>
  Effect.promise(
    () =>
      new Promise<number>((resolve, reject) => {
        const req = http.request(url, { method: "PUT", agent: false }, (res) => {
          res.resume()
          res.on("end", () => resolve(res.statusCode!))
        })
        req.on("error", reject)
        req.end()
      }),
  )

layer(environment, { excludeTestServices: true, timeout: "90 seconds" })("SIGHUP", (it) => {
  it.scoped(
    "a renewed certificate is served to new connections; one opened before keeps working",
    () =>
      Effect.gen(function* () {
        const c = yield* Certs
        const proxy = yield* reloadableProxy
        const before = fingerprint(c.cert)
        expect((yield* freshGet(`${proxy.httpsUrl}/version`, c.ca)).fingerprint).toBe(before)
        const watch = yield* openWatch(`${proxy.httpsUrl}/v2/keys/reload/renewed?wait=true`, c.ca)
        expect(watch.fingerprint).toBe(before)

        const renewed = issueLeaf(c, "renewed")
        copyFileSync(renewed.cert, proxy.served.cert)
        copyFileSync(renewed.key, proxy.served.key)
        yield* proxy.hangUp(1)

        const after = yield* freshGet(`${proxy.httpsUrl}/version`, c.ca)
        expect(after.status).toBe(200)
        expect(after.fingerprint).toBe(fingerprint(renewed.cert))
        expect(after.fingerprint).not.toBe(before)
        // The long poll opened before the reload still gets its event, on its old connection.
        expect(yield* put(`${proxy.url}/v2/keys/reload/renewed?value=after-sighup`)).toBe(201)
        const event = JSON.parse(yield* Effect.promise(() => watch.body)) as {
          node: { value: string }
        }
        expect(event.node.value).toBe("after-sighup")
        expect(proxy.child.exitCode).toBeNull()
      }),
  )

  it.scoped("a broken file keeps the old material, the error names it, and nothing dies", () =>
    Effect.gen(function* () {
      const c = yield* Certs
      const proxy = yield* reloadableProxy
      writeFileSync(proxy.served.cert, "not a certificate\n")
      yield* proxy.hangUp(1)
      const error = proxy
        .output()
        .split("\n")
        .filter((line) => line.includes("keeping the previous material"))
        .map((line) => JSON.parse(line) as Record<string, unknown>)[0]!
      expect(error).toMatchObject({
        level: "error",
        file: proxy.served.cert,
        error: "TlsFileError",
      })
      expect(String(error["reason"])).toContain(`--cert-file ${proxy.served.cert}`)
      expect((yield* freshGet(`${proxy.httpsUrl}/version`, c.ca)).fingerprint).toBe(
        fingerprint(c.cert),
      )
      expect(proxy.child.exitCode).toBeNull()

      // A key that does not match the certificate is refused the same way.
      const other = issueLeaf(c, "other")
      copyFileSync(other.cert, proxy.served.cert)
      copyFileSync(c.clientKey, proxy.served.key)
      yield* proxy.hangUp(2)
      expect(proxy.output()).toContain("do not form a pair")
      expect((yield* freshGet(`${proxy.httpsUrl}/version`, c.ca)).fingerprint).toBe(
        fingerprint(c.cert),
      )

      // Fixed files are taken at the next SIGHUP.
      copyFileSync(other.key, proxy.served.key)
      yield* proxy.hangUp(3)
      expect((yield* freshGet(`${proxy.httpsUrl}/version`, c.ca)).fingerprint).toBe(
        fingerprint(other.cert),
      )

      // Every line is one of etcd's zap lines: level, ts, msg first, fields flat.
      const lines = proxy.output().trim().split("\n")
      expect(lines.length).toBeGreaterThan(5)
      for (const line of lines) {
        const entry = JSON.parse(line) as Record<string, unknown>
        expect(Object.keys(entry).slice(0, 3)).toEqual(["level", "ts", "msg"])
        expect(["debug", "info", "warn", "error"]).toContain(entry["level"])
        expect(String(entry["ts"])).toMatch(
          /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/,
        )
        for (const nested of ["annotations", "spans", "fiberId", "message", "logLevel"]) {
          expect(entry).not.toHaveProperty(nested)
        }
      }
      expect(lines.map((l) => JSON.parse(l) as { msg: string }).map((e) => e.msg)).toContain(
        "etcd-proxy listening",
      )

      // Still a clean stop after all that: exit 0 and the lock file gone.
      proxy.child.kill("SIGTERM")
      expect(yield* Effect.promise(() => proxy.exited)).toBe(0)
      expect(existsSync(join(proxy.dataDir, "proxy", "lock"))).toBe(false)
    }),
  )
})
