/** `--cipher-suites`, `--tls-min-version`, `--tls-max-version` (SPEC §2) and `--auto-tls`'s certificate. */
import { X509Certificate, createPrivateKey } from "node:crypto"
import { createSecureContext } from "node:tls"
import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import { tlsProtocolOptions } from "../../src/domain/TlsSettings.js"
import { selfSignedCertificate } from "../../src/services/SelfSignedCert.js"

const message = (result: ReturnType<typeof tlsProtocolOptions>) =>
  Either.isLeft(result) ? result.left.message : "accepted"

describe("tlsProtocolOptions", () => {
  it("maps etcd's (Go's) suite names to OpenSSL's, the ChaCha20 aliases included", () => {
    const result = tlsProtocolOptions(
      [
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
      ],
      undefined,
      undefined,
    )
    expect(result).toEqual(
      Either.right({
        ciphers:
          "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305",
      }),
    )
    // Every mapped secure name is one this Node's OpenSSL knows.
    const ciphers = Either.getOrThrow(result).ciphers!
    for (const suite of ciphers.split(":"))
      expect(() => createSecureContext({ ciphers: suite })).not.toThrow()
  })

  it("accepts TLS 1.3 names and changes nothing for them, as Go cannot configure them", () => {
    expect(
      tlsProtocolOptions(
        ["TLS_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
        "TLS1.2",
        "TLS1.3",
      ),
    ).toEqual(
      Either.right({
        ciphers: "ECDHE-RSA-AES128-GCM-SHA256",
        minVersion: "TLSv1.2",
        maxVersion: "TLSv1.3",
      }),
    )
    expect(message(tlsProtocolOptions(["TLS_AES_128_GCM_SHA256"], undefined, undefined))).toContain(
      "names only TLS 1.3 suites",
    )
  })

  it("refuses what etcd refuses, naming the flag", () => {
    expect(message(tlsProtocolOptions(["TLS_RSA_WITH_NULL_SHA"], undefined, undefined))).toBe(
      '--cipher-suites: unexpected TLS cipher suite "TLS_RSA_WITH_NULL_SHA" (etcd\'s names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)',
    )
    expect(message(tlsProtocolOptions([], "TLS1.3", "TLS1.2"))).toContain(
      "--tls-min-version TLS1.3 is greater than --tls-max-version TLS1.2",
    )
    expect(
      message(tlsProtocolOptions(["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"], "TLS1.3", undefined)),
    ).toContain("--cipher-suites cannot be configured when only TLS1.3 is enabled")
    expect(tlsProtocolOptions([], undefined, undefined)).toEqual(Either.right({}))
  })
})

describe("selfSignedCertificate", () => {
  it("is self-signed by its key, organisation etcd, for the listen hosts, a year long", () => {
    const now = new Date("2030-01-02T03:04:05Z")
    const pair = selfSignedCertificate(["127.0.0.1", "[::1]", "localhost", "fe80::1:2"], now)
    const cert = new X509Certificate(pair.cert)
    expect(cert.subject).toBe("O=etcd")
    expect(cert.issuer).toBe("O=etcd")
    expect(cert.verify(cert.publicKey)).toBe(true)
    expect(cert.checkPrivateKey(createPrivateKey(pair.key))).toBe(true)
    expect(pair.key).toMatch(/^-----BEGIN EC PRIVATE KEY-----/)
    expect(cert.subjectAltName).toBe(
      "IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:localhost, IP Address:FE80:0:0:0:0:0:1:2",
    )
    expect(cert.checkIP("127.0.0.1")).toBe("127.0.0.1")
    expect(cert.checkHost("localhost")).toBe("localhost")
    expect(new Date(cert.validFrom).getTime()).toBe(now.getTime())
    expect(new Date(cert.validTo).getTime()).toBe(now.getTime() + 365 * 86_400_000)
    expect(cert.ca).toBe(false)
    expect(cert.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1"])
    // OpenSSL takes it as a server certificate.
    expect(() => createSecureContext({ cert: pair.cert, key: pair.key })).not.toThrow()
  })

  it("dates past 2049 as GeneralizedTime, as RFC 5280 requires", () => {
    const cert = new X509Certificate(
      selfSignedCertificate(["127.0.0.1"], new Date("2049-12-01T00:00:00Z")).cert,
    )
    expect(new Date(cert.validTo).toISOString()).toBe("2050-12-01T00:00:00.000Z")
  })
})
