/** Test certificates made with the openssl CLI in a temporary directory, removed with the scope. */
import { execFileSync, spawnSync } from "node:child_process"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import { tempDir } from "./proxy.js"

export interface TestCerts {
  readonly dir: string
  /** The CA that signs everything below except `stranger`. */
  readonly ca: string
  /** For 127.0.0.1 and localhost, valid for server and client use: members and the proxy. */
  readonly cert: string
  readonly key: string
  /** Client use only: what an application presents. */
  readonly clientCert: string
  readonly clientKey: string
  /** Signed by another CA: a certificate nobody here trusts. */
  readonly strangerCa: string
  readonly strangerCert: string
  readonly strangerKey: string
}

const openssl = (args: ReadonlyArray<string>, cwd: string): void => {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] })
}

/** The openssl binary, or a loud error that says how to install it. */
const requireOpenssl = (): void => {
  const probe = spawnSync("openssl", ["version"], { encoding: "utf8" })
  if (probe.error !== undefined || probe.status !== 0) {
    throw new Error('openssl not found: install it with "apt-get install -y openssl"')
  }
}

const newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]

const makeCa = (dir: string, name: string): void =>
  openssl(
    ["req", "-x509", ...newKey, "-keyout", `${name}.key`, "-out", `${name}.pem`].concat([
      "-days",
      "2",
      "-subj",
      `/CN=etcd-proxy test ${name}`,
    ]),
    dir,
  )

const makeLeaf = (dir: string, ca: string, name: string, extensions: string): void => {
  writeFileSync(join(dir, `${name}.ext`), extensions)
  openssl(
    ["req", "-new", ...newKey, "-keyout", `${name}.key`, "-out", `${name}.csr`].concat([
      "-subj",
      `/CN=etcd-proxy test ${name}`,
    ]),
    dir,
  )
  openssl(
    ["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`]
      .concat(["-set_serial", String(Date.now() + Math.floor(Math.random() * 1e6))])
      .concat(["-days", "2", "-out", `${name}.pem`, "-extfile", `${name}.ext`]),
    dir,
  )
}

const serverAndClient = [
  "basicConstraints=CA:FALSE",
  "keyUsage=digitalSignature,keyEncipherment",
  "extendedKeyUsage=serverAuth,clientAuth",
  "subjectAltName=IP:127.0.0.1,DNS:localhost",
].join("\n")

const clientOnly = [
  "basicConstraints=CA:FALSE",
  "keyUsage=digitalSignature,keyEncipherment",
  "extendedKeyUsage=clientAuth",
].join("\n")

/** A fresh set of certificates for one test file. */
export const testCerts = Effect.gen(function* () {
  requireOpenssl()
  const dir = yield* tempDir("etcd-proxy-certs-")
  makeCa(dir, "ca")
  makeLeaf(dir, "ca", "member", serverAndClient)
  makeLeaf(dir, "ca", "client", clientOnly)
  makeCa(dir, "stranger-ca")
  makeLeaf(dir, "stranger-ca", "stranger", serverAndClient)
  const file = (name: string) => join(dir, name)
  return {
    dir,
    ca: file("ca.pem"),
    cert: file("member.pem"),
    key: file("member.key"),
    clientCert: file("client.pem"),
    clientKey: file("client.key"),
    strangerCa: file("stranger-ca.pem"),
    strangerCert: file("stranger.pem"),
    strangerKey: file("stranger.key"),
  } satisfies TestCerts
})

/** Another server-and-client certificate from the test CA, e.g. a renewed one: `{name}.pem`, `{name}.key`. */
export const issueLeaf = (certs: TestCerts, name: string) => {
  makeLeaf(certs.dir, "ca", name, serverAndClient)
  return { cert: join(certs.dir, `${name}.pem`), key: join(certs.dir, `${name}.key`) }
}

/** Another client certificate from the test CA: `{name}.pem`, `{name}.key`. */
export const issueClient = (certs: TestCerts, name: string) => {
  makeLeaf(certs.dir, "ca", name, clientOnly)
  return { cert: join(certs.dir, `${name}.pem`), key: join(certs.dir, `${name}.key`) }
}

/** A CRL from the test CA revoking `revoked` (certificate files), written to `crl.pem`. */
export const revoke = (certs: TestCerts, revoked: ReadonlyArray<string>): string => {
  const config = join(certs.dir, "ca.cnf")
  writeFileSync(
    config,
    [
      "[ca]",
      "default_ca = test",
      "[test]",
      "database = index.txt",
      "crlnumber = crlnumber",
      "default_md = sha256",
      "default_crl_days = 2",
    ].join("\n"),
  )
  writeFileSync(join(certs.dir, "index.txt"), "")
  writeFileSync(join(certs.dir, "crlnumber"), "01\n")
  const ca = ["-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key"]
  for (const cert of revoked) openssl(["ca", ...ca, "-revoke", cert], certs.dir)
  openssl(["ca", ...ca, "-gencrl", "-out", "crl.pem"], certs.dir)
  return join(certs.dir, "crl.pem")
}
