/**
 * `--cipher-suites`, `--tls-min-version` and `--tls-max-version` (SPEC §2) as OpenSSL options:
 * etcd's (Go's) names mapped to OpenSSL's, and etcd's rules for combining them.
 */
import * as Either from "effect/Either"
import type { TlsVersion } from "./Config.js"
import { UsageError } from "./Errors.js"

/**
 * Every name etcd accepts (Go's `tls.CipherSuites()`, `tls.InsecureCipherSuites()` and the two
 * short ChaCha20 aliases), with the OpenSSL name of the TLS 1.2 suite it means.
 */
const tls12Suites: Readonly<Record<string, string>> = {
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: "ECDHE-ECDSA-AES128-SHA",
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: "ECDHE-ECDSA-AES256-SHA",
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: "ECDHE-RSA-AES128-SHA",
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: "ECDHE-RSA-AES256-SHA",
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: "ECDHE-ECDSA-AES128-GCM-SHA256",
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: "ECDHE-ECDSA-AES256-GCM-SHA384",
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: "ECDHE-RSA-AES128-GCM-SHA256",
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: "ECDHE-RSA-AES256-GCM-SHA384",
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-RSA-CHACHA20-POLY1305",
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-ECDSA-CHACHA20-POLY1305",
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305: "ECDHE-RSA-CHACHA20-POLY1305",
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305: "ECDHE-ECDSA-CHACHA20-POLY1305",
  // Go's insecure list; OpenSSL 3 builds usually lack RC4 and 3DES (refused at start then).
  TLS_RSA_WITH_RC4_128_SHA: "RC4-SHA",
  TLS_RSA_WITH_3DES_EDE_CBC_SHA: "DES-CBC3-SHA",
  TLS_RSA_WITH_AES_128_CBC_SHA: "AES128-SHA",
  TLS_RSA_WITH_AES_256_CBC_SHA: "AES256-SHA",
  TLS_RSA_WITH_AES_128_CBC_SHA256: "AES128-SHA256",
  TLS_RSA_WITH_AES_128_GCM_SHA256: "AES128-GCM-SHA256",
  TLS_RSA_WITH_AES_256_GCM_SHA384: "AES256-GCM-SHA384",
  TLS_ECDHE_ECDSA_WITH_RC4_128_SHA: "ECDHE-ECDSA-RC4-SHA",
  TLS_ECDHE_RSA_WITH_RC4_128_SHA: "ECDHE-RSA-RC4-SHA",
  TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA: "ECDHE-RSA-DES-CBC3-SHA",
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: "ECDHE-ECDSA-AES128-SHA256",
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256: "ECDHE-RSA-AES128-SHA256",
}

/**
 * TLS 1.3 suites: etcd accepts their names, but Go always offers all three and lets no
 * configuration change that, so they change nothing here either.
 */
const tls13Suites = new Set([
  "TLS_AES_128_GCM_SHA256",
  "TLS_AES_256_GCM_SHA384",
  "TLS_CHACHA20_POLY1305_SHA256",
])

export interface TlsProtocolOptions {
  /** OpenSSL cipher list for TLS 1.2; absent: Node's defaults. TLS 1.3 keeps Node's defaults. */
  readonly ciphers?: string
  readonly minVersion?: "TLSv1.2" | "TLSv1.3"
  readonly maxVersion?: "TLSv1.2" | "TLSv1.3"
}

const nodeVersion = { "TLS1.2": "TLSv1.2", "TLS1.3": "TLSv1.3" } as const

/** The protocol options for every TLS context the proxy makes, or the usage error etcd reports. */
export const tlsProtocolOptions = (
  cipherSuites: ReadonlyArray<string>,
  minVersion: TlsVersion | undefined,
  maxVersion: TlsVersion | undefined,
): Either.Either<TlsProtocolOptions, UsageError> => {
  const fail = (message: string) => Either.left(new UsageError({ message }))
  if (minVersion === "TLS1.3" && maxVersion === "TLS1.2") {
    return fail(
      "--tls-min-version TLS1.3 is greater than --tls-max-version TLS1.2 (etcd: min version is greater than max version)",
    )
  }
  const unknown = cipherSuites.filter(
    (name) => tls12Suites[name] === undefined && !tls13Suites.has(name),
  )
  if (unknown.length > 0) {
    return fail(
      `--cipher-suites: unexpected TLS cipher suite ${JSON.stringify(unknown[0])} (etcd's names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)`,
    )
  }
  if (cipherSuites.length > 0 && minVersion === "TLS1.3") {
    return fail(
      "--cipher-suites cannot be configured when only TLS1.3 is enabled (--tls-min-version TLS1.3), as in etcd",
    )
  }
  const openssl = [...new Set(cipherSuites.flatMap((name) => tls12Suites[name] ?? []))]
  if (cipherSuites.length > 0 && openssl.length === 0) {
    return fail(
      "--cipher-suites names only TLS 1.3 suites, which are not configurable (as in etcd); name TLS 1.2 suites or leave it out",
    )
  }
  return Either.right({
    ...(openssl.length > 0 ? { ciphers: openssl.join(":") } : {}),
    ...(minVersion === undefined ? {} : { minVersion: nodeVersion[minVersion] }),
    ...(maxVersion === undefined ? {} : { maxVersion: nodeVersion[maxVersion] }),
  })
}

/** The OpenSSL names in `ciphers` and the etcd name each came from, to say which one is missing. */
export const etcdNameOf = (openssl: string): string | undefined =>
  Object.entries(tls12Suites).find(([, value]) => value === openssl)?.[0]
