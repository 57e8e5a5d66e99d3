/**
 * TLS both ways (SPEC §8.3, §2): https listeners negotiating h2 or http/1.1 by ALPN, mutual TLS
 * for clients, TLS client certificates towards members, the `/members` fetch with the peer
 * settings, and unusable TLS files refused at start. A real 3-member etcd 3.4 serving its client
 * and peer URLs over TLS with client certificates required, certificates made with openssl.
 */
import { execFile } from "node:child_process"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { freePort } from "../../scripts/lib/cluster.mjs"
import { acquireCluster, EtcdCluster } from "../support/cluster.js"
import { etcdctl } from "../support/etcdctl.js"
import { runCli, startProxy } from "../support/proxy.js"
import { testCerts, type TestCerts } from "../support/tls.js"

class Certs extends Context.Tag("test/Certs")<Certs, TestCerts>() {}

const certs = Layer.scoped(Certs, testCerts)
const cluster = Layer.scoped(
  EtcdCluster,
  Effect.flatMap(Certs, (c) =>
    acquireCluster({
      size: 3,
      tls: { certFile: c.cert, keyFile: c.key, caFile: c.ca, clientCertAuth: true, peer: true },
    }),
  ),
)
const environment = cluster.pipe(Layer.provideMerge(certs))

const ok = (result: { code: number; stdout: string; stderr: string }) => {
  expect(result.code, result.stderr).toBe(0)
  return result.stdout
}

/**
 * A proxy listening on plain http (where the test harness checks it is up) and, when
 * `https` is set, on an https URL too.
 */
const proxyWith = (args: ReadonlyArray<string>, https: boolean) =>
  Effect.gen(function* () {
    const cluster = yield* EtcdCluster
    const port = yield* Effect.promise(() => freePort())
    const tlsPort = yield* Effect.promise(() => freePort())
    const dataDir = yield* Effect.sync(() => join(cluster.root, `proxy-${port}`))
    const listen = [`http://127.0.0.1:${port}`, ...(https ? [`https://127.0.0.1:${tlsPort}`] : [])]
    const proxy = yield* startProxy({
      port,
      defaults: false,
      args: [
        "--listen-client-urls",
        listen.join(","),
        "--data-dir",
        dataDir,
        "--initial-cluster",
        cluster.initialCluster,
        ...args,
      ],
    })
    return { ...proxy, httpsUrl: `https://127.0.0.1:${tlsPort}` }
  })

/** The server pair, our CA for members, and the peer settings: a full §8.3 configuration. */
/** etcdctl's flags for trusting the test CA and presenting the known client certificate. */
const withClientCert = (c: TestCerts) => [
  "--cacert",
  c.ca,
  "--cert",
  c.clientCert,
  "--key",
  c.clientKey,
]

const fullTls = (c: TestCerts) => [
  "--cert-file",
  c.cert,
  "--key-file",
  c.key,
  "--trusted-ca-file",
  c.ca,
  "--peer-cert-file",
  c.cert,
  "--peer-key-file",
  c.key,
  "--peer-trusted-ca-file",
  c.ca,
]

/** `curl` as a user would run it; `-w` prints the HTTP version negotiated. */
const curl = (args: ReadonlyArray<string>) =>
  Effect.async<{ code: number; stdout: string; stderr: string }>((resume) => {
    const child = execFile("curl", ["-sS", "--max-time", "10", ...args], (error, stdout, stderr) =>
      resume(
        Effect.succeed({
          code: error === null ? 0 : typeof error.code === "number" ? error.code : -1,
          stdout,
          stderr,
        }),
      ),
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

layer(environment, { excludeTestServices: true, timeout: "60 seconds" })(
  "TLS towards clients and members",
  (it) => {
    it.scoped("etcdctl --cacert over https: gRPC relayed to members that serve TLS", () =>
      Effect.gen(function* () {
        const c = yield* Certs
        const cluster = yield* EtcdCluster
        const proxy = yield* proxyWith(fullTls(c), true)
        const via = ["--endpoints", proxy.httpsUrl, "--cacert", c.ca]
        expect(ok(yield* etcdctl([...via, "put", "/tls/a", "secret"]))).toBe("OK\n")
        expect(ok(yield* etcdctl([...via, "get", "/tls/a", "--print-value-only"]))).toBe("secret\n")
        const status = JSON.parse(
          ok(yield* etcdctl([...via, "endpoint", "status", "-w", "json"])),
        ) as Array<{ Endpoint: string; Status: { version: string } }>
        expect(status[0]!.Endpoint).toBe(proxy.httpsUrl)
        expect(status[0]!.Status.version).toBe("3.4.23")

        const direct = ["--endpoints", cluster.members[1]!.clientUrl, ...withClientCert(c)]
        expect(ok(yield* etcdctl([...direct, "get", "/tls/a", "--print-value-only"]))).toBe(
          "secret\n",
        )
      }),
    )

    it.scoped("HTTP/1.1 on the same https port: ALPN gives it to a client that offers it", () =>
      Effect.gen(function* () {
        const c = yield* Certs
        const proxy = yield* proxyWith(fullTls(c), true)
        const answer = yield* curl([
          "--cacert",
          c.ca,
          "-w",
          "\n%{http_version}",
          `${proxy.httpsUrl}/v2/keys/tls-v2?value=over-https`,
          "-X",
          "PUT",
        ])
        const out = ok(answer)
        const cut = out.lastIndexOf("\n")
        expect(out.slice(cut + 1)).toBe("1.1")
        expect(JSON.parse(out.slice(0, cut))).toMatchObject({
          action: "set",
          node: { value: "over-https" },
        })
        // The same request over the plain listener of the same proxy reaches the same cluster.
        const plain = yield* curl([`${proxy.url}/v2/keys/tls-v2`])
        expect(JSON.parse(ok(plain))).toMatchObject({ node: { value: "over-https" } })
      }),
    )

    it.scoped("mutual TLS: a client without a certificate is refused, one with is served", () =>
      Effect.gen(function* () {
        const c = yield* Certs
        const proxy = yield* proxyWith([...fullTls(c), "--client-cert-auth"], true)
        const anonymous = yield* etcdctl(
          [
            "--endpoints",
            proxy.httpsUrl,
            "--cacert",
            c.ca,
            "--dial-timeout",
            "2s",
            "--command-timeout",
            "3s",
            "get",
            "/tls/a",
          ],
          { timeoutMs: 10_000 },
        )
        expect(anonymous.code).not.toBe(0)
        expect(anonymous.stdout).toBe("")
        const noCert = yield* curl(["--cacert", c.ca, `${proxy.httpsUrl}/version`])
        expect(noCert.code).not.toBe(0)

        const stranger = yield* curl([
          "--cacert",
          c.ca,
          "--cert",
          c.strangerCert,
          "--key",
          c.strangerKey,
          `${proxy.httpsUrl}/version`,
        ])
        expect(stranger.code).not.toBe(0)

        const known = ["--endpoints", proxy.httpsUrl, ...withClientCert(c)]
        expect(ok(yield* etcdctl([...known, "get", "/tls/a", "--print-value-only"]))).toBe(
          "secret\n",
        )
      }),
    )

    it.scoped("read-only over TLS both ways: reads forwarded per stream, writes refused", () =>
      Effect.gen(function* () {
        const c = yield* Certs
        const proxy = yield* proxyWith(["--proxy", "readonly", ...fullTls(c)], true)
        const via = ["--endpoints", proxy.httpsUrl, "--cacert", c.ca]
        expect(ok(yield* etcdctl([...via, "get", "/tls/a", "--print-value-only"]))).toBe("secret\n")
        const put = yield* etcdctl([...via, "put", "/tls/b", "x"])
        expect(put.stderr).toContain(
          "code = Unimplemented desc = httpproxy: read-only proxy refuses gRPC /etcdserverpb.KV/Put",
        )
      }),
    )

    it.scoped("only --peer-* flags: the peer pair and CA serve /members and the members", () =>
      Effect.gen(function* () {
        const c = yield* Certs
        const proxy = yield* proxyWith(
          ["--peer-cert-file", c.cert, "--peer-key-file", c.key, "--peer-trusted-ca-file", c.ca],
          false,
        )
        const config = yield* Effect.promise(() =>
          fetch(`${proxy.url}/v2/config/local/proxy`).then((r) => r.json()),
        )
        expect((config as { endpoints: Array<string> }).endpoints).toHaveLength(3)
        expect(
          ok(yield* etcdctl(["--endpoints", proxy.url, "get", "/tls/a", "--print-value-only"])),
        ).toBe("secret\n")
        const v2 = yield* curl([`${proxy.url}/v2/keys/tls-v2`])
        expect(JSON.parse(ok(v2))).toMatchObject({ node: { value: "over-https" } })
      }),
    )

    it.scoped("a member certificate signed by an untrusted CA is a failed endpoint", () =>
      Effect.gen(function* () {
        const c = yield* Certs
        const proxy = yield* proxyWith(
          [
            "--trusted-ca-file",
            c.strangerCa,
            "--cert-file",
            c.cert,
            "--key-file",
            c.key,
            "--peer-cert-file",
            c.cert,
            "--peer-key-file",
            c.key,
            "--peer-trusted-ca-file",
            c.ca,
          ],
          false,
        )
        const get = yield* etcdctl(
          ["--endpoints", proxy.url, "--command-timeout", "2s", "get", "/tls/a"],
          { timeoutMs: 10_000 },
        )
        expect(get.code).not.toBe(0)
        expect(get.stdout).toBe("")
        // The relay could reach no member: the proxy says so instead of handing over bad TLS.
        expect(get.stderr).toMatch(
          /httpproxy: (unable to get response from 3 endpoint\(s\)|zero endpoints currently available)/,
        )
        expect(proxy.output()).toMatch(/endpoint marked failed.*error=\S*(CERT|SIGNATURE|VERIFY)/)
      }),
    )

    describe("unusable TLS files exit 2 naming the file", () => {
      const start = (args: ReadonlyArray<string>) =>
        Effect.gen(function* () {
          const cluster = yield* EtcdCluster
          const port = yield* Effect.promise(() => freePort())
          return yield* runCli([
            "--listen-client-urls",
            `https://127.0.0.1:${port}`,
            "--data-dir",
            join(cluster.root, `refused-${port}`),
            "--initial-cluster",
            cluster.initialCluster,
            ...args,
          ])
        })

      it.scoped("a missing certificate file", () =>
        Effect.gen(function* () {
          const c = yield* Certs
          const missing = join(c.dir, "missing.pem")
          const run = yield* start(["--cert-file", missing, "--key-file", c.key])
          expect(run.code).toBe(2)
          expect(run.output).toContain(`--cert-file ${missing}`)
          expect(run.output).toContain("ENOENT")
        }),
      )

      it.scoped("a certificate and a key that are not a pair", () =>
        Effect.gen(function* () {
          const c = yield* Certs
          const run = yield* start(["--cert-file", c.cert, "--key-file", c.clientKey])
          expect(run.code).toBe(2)
          expect(run.output).toContain(
            `--cert-file ${c.cert} and --key-file ${c.clientKey} do not form a pair`,
          )
        }),
      )

      it.scoped("a CA file with no certificate in it", () =>
        Effect.gen(function* () {
          const c = yield* Certs
          const garbage = join(c.dir, "not-a-ca.pem")
          writeFileSync(garbage, readFileSync(c.key))
          const run = yield* start([
            "--cert-file",
            c.cert,
            "--key-file",
            c.key,
            "--trusted-ca-file",
            garbage,
          ])
          expect(run.code).toBe(2)
          expect(run.output).toContain(`--trusted-ca-file ${garbage} holds no PEM certificate`)
        }),
      )

      it.scoped("an unreadable peer key", () =>
        Effect.gen(function* () {
          const c = yield* Certs
          const run = yield* start([
            "--cert-file",
            c.cert,
            "--key-file",
            c.key,
            "--peer-cert-file",
            c.cert,
            "--peer-key-file",
            c.dir,
          ])
          expect(run.code).toBe(2)
          expect(run.output).toContain(`--peer-key-file ${c.dir}`)
        }),
      )
    })
  },
)
