/**
 * The TLS settings that came with etcd's flag surface (SPEC §2, §8.3), on a proxy run in-process
 * from a `ProxyConfig` in front of real etcd members: `--client-crl-file`, `--cipher-suites`,
 * `--tls-min-version`/`--tls-max-version`, `--auto-tls` and `--peer-auto-tls`, and https on a
 * `--listen-metrics-urls` listener.
 */
import { X509Certificate } from "node:crypto"
import { readFileSync } from "node:fs"
import * as https from "node:https"
import { join } from "node:path"
import * as tls from "node:tls"
import { expect, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { freePort } from "../../scripts/lib/cluster.mjs"
import { makeProxyConfig, noTls, type TlsFiles } from "../../src/domain/Config.js"
import { ProxyLive } from "../../src/layers/ProxyLayer.js"
import { MetricsListener } from "../../src/services/request/MetricsListener.js"
import { acquireCluster, EtcdCluster } from "../support/cluster.js"
import { tempDir } from "../support/proxy.js"
import { issueClient, revoke, testCerts, type TestCerts } from "../support/tls.js"

class Certs extends Context.Tag("test/Certs")<Certs, TestCerts>() {}

const certs = Layer.scoped(Certs, testCerts)
const environment = Layer.scoped(EtcdCluster, acquireCluster({ size: 1 })).pipe(Layer.merge(certs))

/** Runs the whole proxy in this process on an https URL; stopped with the scope. */
const proxyWith = (settings: Partial<TlsFiles>, metricsHttps = false) =>
  Effect.gen(function* () {
    const cluster = yield* EtcdCluster
    const port = yield* Effect.promise(() => freePort())
    const metricsPort = yield* Effect.promise(() => freePort())
    const dataDir = join(yield* tempDir("etcd-proxy-tls-"), "data")
    const config = makeProxyConfig(
      {
        _tag: "InitialCluster",
        members: cluster.members.map((m) => ({ name: m.name, peerUrl: new URL(m.peerUrl) })),
      },
      {
        listenUrls: [new URL(`https://127.0.0.1:${port}`)],
        metricsUrls: metricsHttps ? [new URL(`https://127.0.0.1:${metricsPort}`)] : [],
        dataDir,
        tls: { ...noTls, ...settings },
      },
    )
    const context = yield* Layer.build(ProxyLive(config))
    return {
      url: `https://127.0.0.1:${port}`,
      metrics: Context.get(context, MetricsListener).addresses[0],
      dataDir,
    }
  })

interface Handshake {
  readonly ok: boolean
  readonly protocol?: string | null
  readonly cipher?: string
  readonly peer?: tls.PeerCertificate
  readonly answer?: string
  readonly error?: string
}

/** One TLS connection sending `GET /version`; what was negotiated and what came back. */
const handshake = (url: string, options: tls.ConnectionOptions) =>
  Effect.promise(
    () =>
      new Promise<Handshake>((resolve) => {
        const { hostname, port } = new URL(url)
        let negotiated: Pick<Handshake, "protocol" | "cipher" | "peer"> = {}
        const socket = tls.connect({ host: hostname, port: Number(port), ...options }, () => {
          negotiated = {
            protocol: socket.getProtocol(),
            cipher: socket.getCipher().name,
            peer: socket.getPeerCertificate(),
          }
          socket.write(`GET /version HTTP/1.1\r\nHost: ${hostname}\r\nConnection: close\r\n\r\n`)
        })
        let answer = ""
        let error: string | undefined
        socket.on("data", (chunk: Buffer) => (answer += chunk.toString()))
        socket.on("error", (e) => (error = e.message))
        socket.on("close", () => {
          const ok = answer.startsWith("HTTP/1.1 200")
          resolve({ ok, ...negotiated, answer, ...(error === undefined ? {} : { error }) })
        })
      }),
  )

const serverPair = (c: TestCerts): Partial<TlsFiles> => ({ certFile: c.cert, keyFile: c.key })

layer(environment, { excludeTestServices: true, timeout: "90 seconds" })("TLS settings", (it) => {
  it.scoped("--client-crl-file: a revoked client certificate is refused, others pass", () =>
    Effect.gen(function* () {
      const c = yield* Certs
      const revoked = issueClient(c, "revoked")
      const crl = revoke(c, [revoked.cert])
      const proxy = yield* proxyWith({
        ...serverPair(c),
        trustedCaFile: c.ca,
        clientCertAuth: true,
        clientCrlFile: crl,
      })
      const ca = readFileSync(c.ca)
      const good = yield* handshake(proxy.url, {
        ca,
        cert: readFileSync(c.clientCert),
        key: readFileSync(c.clientKey),
      })
      expect(good.ok, good.error).toBe(true)
      const bad = yield* handshake(proxy.url, {
        ca,
        cert: readFileSync(revoked.cert),
        key: readFileSync(revoked.key),
      })
      expect(bad.ok).toBe(false)
      expect(bad.answer ?? "").toBe("")
    }),
  )

  it.scoped("--cipher-suites and --tls-max-version: the named suite, TLS 1.2, nothing else", () =>
    Effect.gen(function* () {
      const c = yield* Certs
      const proxy = yield* proxyWith({
        ...serverPair(c),
        cipherSuites: ["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"],
        maxVersion: "TLS1.2",
      })
      const ca = readFileSync(c.ca)
      const any = yield* handshake(proxy.url, { ca })
      expect(any.ok, any.error).toBe(true)
      expect(any.protocol).toBe("TLSv1.2")
      expect(any.cipher).toBe("ECDHE-ECDSA-AES256-GCM-SHA384")
      const other = yield* handshake(proxy.url, {
        ca,
        ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256",
        maxVersion: "TLSv1.2",
      })
      expect(other.ok).toBe(false)
      expect(other.error).toMatch(/handshake failure|no shared cipher/i)
    }),
  )

  it.scoped("--tls-min-version TLS1.3 refuses a TLS 1.2 client", () =>
    Effect.gen(function* () {
      const c = yield* Certs
      const proxy = yield* proxyWith({ ...serverPair(c), minVersion: "TLS1.3" })
      const ca = readFileSync(c.ca)
      const old = yield* handshake(proxy.url, { ca, maxVersion: "TLSv1.2" })
      expect(old.ok).toBe(false)
      expect(old.error).toMatch(/protocol version/i)
      const current = yield* handshake(proxy.url, { ca })
      expect(current.ok, current.error).toBe(true)
      expect(current.protocol).toBe("TLSv1.3")
    }),
  )

  it.scoped("an unusable setting fails the start, naming the flag", () =>
    Effect.gen(function* () {
      const c = yield* Certs
      const exit = yield* Effect.exit(
        Effect.scoped(proxyWith({ ...serverPair(c), cipherSuites: ["TLS_RSA_WITH_RC4_128_SHA"] })),
      )
      expect(Exit.isFailure(exit)).toBe(true)
      expect(JSON.stringify(exit)).toContain("--cipher-suites: TLS_RSA_WITH_RC4_128_SHA")
      const crl = yield* Effect.exit(
        Effect.scoped(proxyWith({ ...serverPair(c), clientCrlFile: c.ca })),
      )
      expect(JSON.stringify(crl)).toContain(`--client-crl-file ${c.ca} holds no PEM X509 CRL`)
    }),
  )

  it.scoped(
    "--auto-tls: a self-signed certificate for the listen hosts, kept in the data dir",
    () =>
      Effect.gen(function* () {
        const c = yield* Certs
        const proxy = yield* proxyWith({ autoTls: true }, true)
        const first = yield* handshake(proxy.url, { rejectUnauthorized: false })
        expect(first.ok, first.error).toBe(true)
        expect(first.peer!.subject).toMatchObject({ O: "etcd" })
        expect(first.peer!.issuer).toMatchObject({ O: "etcd" })
        const saved = new X509Certificate(
          readFileSync(join(proxy.dataDir, "proxy", "clientCerts", "cert.pem")),
        )
        expect(first.peer!.fingerprint256).toBe(saved.fingerprint256)
        expect(saved.checkIP("127.0.0.1")).toBe("127.0.0.1")
        // Unverifiable without skipping verification, as a self-signed certificate is.
        const strict = yield* handshake(proxy.url, { ca: readFileSync(c.ca) })
        expect(strict.ok).toBe(false)
        // The metrics listener serves the same material.
        const live = yield* Effect.promise(
          () =>
            new Promise<number>((resolve, reject) =>
              https
                .get(`${proxy.metrics}/livez`, { rejectUnauthorized: false }, (res) => {
                  const peer = (res.socket as tls.TLSSocket).getPeerCertificate()
                  res.resume()
                  resolve(peer.fingerprint256 === saved.fingerprint256 ? res.statusCode! : -1)
                })
                .on("error", reject),
            ),
        )
        expect(live).toBe(200)
      }),
  )
})

/** Members whose certificates nobody here trusts: what `--auto-tls`/`--peer-auto-tls` accept. */
const strangers = Layer.scoped(
  EtcdCluster,
  Effect.flatMap(Certs, (c) =>
    acquireCluster({
      size: 1,
      tls: { certFile: c.strangerCert, keyFile: c.strangerKey, caFile: c.strangerCa, peer: true },
    }),
  ),
).pipe(Layer.provideMerge(certs))

layer(strangers, { excludeTestServices: true, timeout: "90 seconds" })(
  "auto TLS towards members",
  (it) => {
    it.scoped("--auto-tls and --peer-auto-tls accept members' unverifiable certificates", () =>
      Effect.gen(function* () {
        const c = yield* Certs
        const peerPair = { peerCertFile: c.strangerCert, peerKeyFile: c.strangerKey }
        const proxy = yield* proxyWith({ ...peerPair, autoTls: true, peerAutoTls: true })
        const answer = yield* handshake(proxy.url, { rejectUnauthorized: false })
        expect(answer.ok, answer.error).toBe(true)
        expect(answer.answer).toContain('"etcdserver":"3.4')

        // Without them the same members are refused: the member list cannot even be fetched.
        const strict = yield* proxyWith({ ...peerPair, autoTls: true })
        const refused = yield* handshake(strict.url, { rejectUnauthorized: false })
        expect(refused.answer).toMatch(/^HTTP\/1.1 503/)
      }),
    )
  },
)
