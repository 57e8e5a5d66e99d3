/** The TLS files of SPEC §8.3, read and checked once at start, as options for each direction. */
import { X509Certificate } from "node:crypto"
import { readFileSync } from "node:fs"
import { createSecureContext } from "node:tls"
import * as Effect from "effect/Effect"
import { ProxyConfig } from "../domain/Config.js"
import { UsageError } from "../domain/Errors.js"

export interface ClientTls {
  readonly ca?: Buffer
  readonly cert?: Buffer
  readonly key?: Buffer
}

export interface ServerTls {
  readonly cert: Buffer
  readonly key: Buffer
  readonly ca?: Buffer
  readonly requestCert: boolean
  readonly rejectUnauthorized: boolean
}

const read = (
  flag: string,
  file: string | undefined,
): Effect.Effect<Buffer | undefined, UsageError> =>
  file === undefined
    ? Effect.succeed(undefined)
    : Effect.try({
        try: () => readFileSync(file),
        catch: (error) =>
          new UsageError({
            message: `cannot read --${flag} ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
          }),
      })

const reason = (error: unknown): string =>
  error instanceof Error ? error.message.replace(/^error:[0-9A-F]+:/, "") : String(error)

/** A certificate and its key, both given or neither, and matching each other. */
const checkPair = (
  prefix: "" | "peer-",
  certFile: string | undefined,
  cert: Buffer | undefined,
  keyFile: string | undefined,
  key: Buffer | undefined,
): Effect.Effect<void, UsageError> => {
  if (cert === undefined && key === undefined) return Effect.void
  if (cert === undefined || key === undefined) {
    return new UsageError({
      message:
        cert === undefined
          ? `--${prefix}key-file ${keyFile} needs --${prefix}cert-file`
          : `--${prefix}cert-file ${certFile} needs --${prefix}key-file`,
    })
  }
  return Effect.try({
    try: () => void new X509Certificate(cert),
    catch: (error) =>
      new UsageError({
        message: `--${prefix}cert-file ${certFile} is not a PEM certificate: ${reason(error)}`,
      }),
  }).pipe(
    Effect.zipRight(
      Effect.try({
        try: () => void createSecureContext({ cert, key }),
        catch: (error) =>
          new UsageError({
            message: `--${prefix}cert-file ${certFile} and --${prefix}key-file ${keyFile} do not form a pair: ${reason(error)}`,
          }),
      }),
    ),
  )
}

const pemCertificates = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g

/** A CA file holds at least one certificate, and every one of them parses (Node ignores bad ones). */
const checkCa = (
  flag: string,
  file: string | undefined,
  ca: Buffer | undefined,
): Effect.Effect<void, UsageError> => {
  if (ca === undefined) return Effect.void
  const blocks = ca.toString("latin1").match(pemCertificates) ?? []
  if (blocks.length === 0) {
    return new UsageError({ message: `--${flag} ${file} holds no PEM certificate` })
  }
  return Effect.try({
    try: () => blocks.forEach((block) => new X509Certificate(block)),
    catch: (error) =>
      new UsageError({ message: `--${flag} ${file} has a bad certificate: ${reason(error)}` }),
  })
}

const definedOnly = (options: Record<string, Buffer | undefined>): ClientTls =>
  Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined))

export class TlsMaterial extends Effect.Service<TlsMaterial>()("etcd-proxy/TlsMaterial", {
  effect: Effect.gen(function* () {
    const { tls, listenUrls } = yield* ProxyConfig
    const cert = yield* read("cert-file", tls.certFile)
    const key = yield* read("key-file", tls.keyFile)
    const ca = yield* read("trusted-ca-file", tls.trustedCaFile)
    const peerCert = yield* read("peer-cert-file", tls.peerCertFile)
    const peerKey = yield* read("peer-key-file", tls.peerKeyFile)
    const peerCa = yield* read("peer-trusted-ca-file", tls.peerTrustedCaFile)
    yield* checkPair("", tls.certFile, cert, tls.keyFile, key)
    yield* checkPair("peer-", tls.peerCertFile, peerCert, tls.peerKeyFile, peerKey)
    yield* checkCa("trusted-ca-file", tls.trustedCaFile, ca)
    yield* checkCa("peer-trusted-ca-file", tls.peerTrustedCaFile, peerCa)

    const needsServer = listenUrls.some((url) => url.protocol === "https:")
    if (needsServer && (cert === undefined || key === undefined)) {
      return yield* new UsageError({
        message: "--listen-client-urls has an https URL: --cert-file and --key-file are required",
      })
    }
    if (tls.clientCertAuth && ca === undefined) {
      return yield* new UsageError({
        message: "--client-cert-auth requires --trusted-ca-file",
      })
    }

    const server: ServerTls | undefined =
      cert !== undefined && key !== undefined
        ? {
            cert,
            key,
            ...(ca === undefined ? {} : { ca }),
            requestCert: tls.clientCertAuth,
            rejectUnauthorized: tls.clientCertAuth,
          }
        : undefined

    return {
      server,
      /** Client requests to members: our client pair (else the peer pair), our CA (else the peer CA). */
      towardsMembers: definedOnly({
        cert: cert ?? peerCert,
        key: cert === undefined ? peerKey : key,
        ca: ca ?? peerCa,
      }),
      /** `GET /members` on peer URLs: the peer settings. */
      towardsPeers: definedOnly({ cert: peerCert, key: peerKey, ca: peerCa }),
    } as const
  }),
}) {}
