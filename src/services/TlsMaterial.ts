/**
 * The TLS files of SPEC §8.3 as options for each direction, checked at start and re-read on
 * `reload` (SIGHUP, §8.7): a file that no longer reads or matches keeps the material it replaced.
 */
import { X509Certificate } from "node:crypto"
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { createSecureContext } from "node:tls"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { ProxyConfig } from "../domain/Config.js"
import { UsageError } from "../domain/Errors.js"
import { etcdNameOf, tlsProtocolOptions, type TlsProtocolOptions } from "../domain/TlsSettings.js"
import { DataDir } from "./DataDir.js"
import { selfSignedCertificate } from "./SelfSignedCert.js"

export interface ClientTls extends TlsProtocolOptions {
  readonly ca?: Buffer
  readonly cert?: Buffer
  readonly key?: Buffer
  /** false with `--auto-tls`/`--peer-auto-tls`: members' self-signed certificates are accepted. */
  readonly rejectUnauthorized?: boolean
}

export interface ServerTls extends TlsProtocolOptions {
  readonly cert: Buffer
  readonly key: Buffer
  readonly ca?: Buffer
  readonly crl?: Buffer
  readonly requestCert: boolean
  readonly rejectUnauthorized: boolean
}

/** A TLS file that cannot be used: a usage error at start, an error log on reload. */
export class TlsFileError extends Data.TaggedError("TlsFileError")<{
  readonly file: string
  readonly message: string
}> {}

const reason = (error: unknown): string =>
  error instanceof Error ? error.message.replace(/^error:[0-9A-F]+:/, "") : String(error)

const read = (flag: string, file: string): Effect.Effect<Buffer, TlsFileError> =>
  Effect.try({
    try: () => readFileSync(file),
    catch: (error) =>
      new TlsFileError({
        file,
        message: `cannot read --${flag} ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
      }),
  })

interface Pair {
  readonly cert: Buffer
  readonly key: Buffer
}

interface PairFiles {
  readonly prefix: "" | "peer-"
  readonly certFile: string
  readonly keyFile: string
}

/** A certificate and its key, both readable, the certificate parseable, the two a pair. */
const loadPair = ({ prefix, certFile, keyFile }: PairFiles): Effect.Effect<Pair, TlsFileError> =>
  Effect.gen(function* () {
    const cert = yield* read(`${prefix}cert-file`, certFile)
    const key = yield* read(`${prefix}key-file`, keyFile)
    yield* Effect.try({
      try: () => void new X509Certificate(cert),
      catch: (error) =>
        new TlsFileError({
          file: certFile,
          message: `--${prefix}cert-file ${certFile} is not a PEM certificate: ${reason(error)}`,
        }),
    })
    yield* Effect.try({
      try: () => void createSecureContext({ cert, key }),
      catch: (error) =>
        new TlsFileError({
          file: `${certFile} ${keyFile}`,
          message: `--${prefix}cert-file ${certFile} and --${prefix}key-file ${keyFile} do not form a pair: ${reason(error)}`,
        }),
    })
    return { cert, key }
  })

const pemCertificates = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g

/** A CA file holds at least one certificate, and every one of them parses (Node ignores bad ones). */
const loadCa = (flag: string, file: string): Effect.Effect<Buffer, TlsFileError> =>
  Effect.flatMap(read(flag, file), (ca) => {
    const blocks = ca.toString("latin1").match(pemCertificates) ?? []
    if (blocks.length === 0) {
      return new TlsFileError({ file, message: `--${flag} ${file} holds no PEM certificate` })
    }
    return Effect.try({
      try: () => {
        blocks.forEach((block) => new X509Certificate(block))
        return ca
      },
      catch: (error) =>
        new TlsFileError({
          file,
          message: `--${flag} ${file} has a bad certificate: ${reason(error)}`,
        }),
    })
  })

/** A CRL file holds at least one PEM `X509 CRL` block that OpenSSL reads. */
const loadCrl = (file: string): Effect.Effect<Buffer, TlsFileError> =>
  Effect.flatMap(read("client-crl-file", file), (crl) =>
    crl.includes("-----BEGIN X509 CRL-----")
      ? Effect.try({
          try: () => {
            createSecureContext({ crl })
            return crl
          },
          catch: (error) =>
            new TlsFileError({
              file,
              message: `--client-crl-file ${file} has a bad CRL: ${reason(error)}`,
            }),
        })
      : new TlsFileError({ file, message: `--client-crl-file ${file} holds no PEM X509 CRL` }),
  )

/** Every file-backed piece of the material; each is replaced on its own when it reloads well. */
interface Material {
  /** The https listeners' pair: `--cert-file`/`--key-file`, or the `--auto-tls` one. */
  readonly server: Pair | undefined
  /** `--cert-file`/`--key-file` alone: the client certificate towards members. */
  readonly client: Pair | undefined
  readonly peer: Pair | undefined
  readonly ca: Buffer | undefined
  readonly peerCa: Buffer | undefined
  readonly crl: Buffer | undefined
}

type Loader<A> = Effect.Effect<A | undefined, TlsFileError>

const definedOnly = <A extends object>(options: {
  readonly [K in keyof A]?: A[K] | undefined
}): A => Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as A

const toUsage = (error: TlsFileError) => new UsageError({ message: error.message })

export class TlsMaterial extends Effect.Service<TlsMaterial>()("etcd-proxy/TlsMaterial", {
  effect: Effect.gen(function* () {
    const config = yield* ProxyConfig
    const { tls } = config
    const protocol = yield* Either.match(
      tlsProtocolOptions(tls.cipherSuites, tls.minVersion, tls.maxVersion),
      { onLeft: (e) => Effect.fail(e), onRight: (p) => Effect.succeed(p) },
    )
    // OpenSSL silently drops the suites it lacks from a list: name the first one missing here.
    for (const suite of protocol.ciphers?.split(":") ?? []) {
      yield* Effect.try({
        try: () => void createSecureContext({ ciphers: suite }),
        catch: () =>
          new UsageError({
            message: `--cipher-suites: ${etcdNameOf(suite)} (OpenSSL ${suite}) is not available in this Node's OpenSSL`,
          }),
      })
    }

    const needsServer = [...config.listenUrls, ...config.metricsUrls].some(
      (url) => url.protocol === "https:",
    )
    const half = (
      prefix: "" | "peer-",
      certFile: string | undefined,
      keyFile: string | undefined,
    ) =>
      certFile !== undefined && keyFile === undefined
        ? Effect.fail(
            new UsageError({
              message: `--${prefix}cert-file ${certFile} needs --${prefix}key-file`,
            }),
          )
        : certFile === undefined && keyFile !== undefined
          ? Effect.fail(
              new UsageError({
                message: `--${prefix}key-file ${keyFile} needs --${prefix}cert-file`,
              }),
            )
          : Effect.void
    yield* half("", tls.certFile, tls.keyFile)
    yield* half("peer-", tls.peerCertFile, tls.peerKeyFile)

    const clientFiles: PairFiles | undefined =
      tls.certFile !== undefined && tls.keyFile !== undefined
        ? { prefix: "", certFile: tls.certFile, keyFile: tls.keyFile }
        : undefined
    const peerFiles: PairFiles | undefined =
      tls.peerCertFile !== undefined && tls.peerKeyFile !== undefined
        ? { prefix: "peer-", certFile: tls.peerCertFile, keyFile: tls.peerKeyFile }
        : undefined

    let serverFiles = clientFiles
    if (tls.autoTls && clientFiles !== undefined) {
      yield* Effect.logWarning(
        "ignoring --auto-tls: --cert-file and --key-file are given, as etcd does",
      )
    } else if (tls.autoTls && needsServer) {
      serverFiles = yield* autoTlsFiles(config.listenUrls, config.metricsUrls)
    }
    if (needsServer && serverFiles === undefined) {
      return yield* new UsageError({
        message:
          "--listen-client-urls has an https URL: --cert-file and --key-file are required (or --auto-tls)",
      })
    }
    if (tls.clientCertAuth && tls.trustedCaFile === undefined) {
      return yield* new UsageError({ message: "--client-cert-auth requires --trusted-ca-file" })
    }
    if (tls.autoTls) {
      yield* Effect.logWarning(
        "--auto-tls: member certificates are not verified, as etcd's proxy does",
      )
    }
    if (tls.peerAutoTls) {
      yield* Effect.logWarning(
        "--peer-auto-tls: peer certificates are not verified, as etcd's proxy does",
      )
    }

    const optional = <A>(
      files: A | undefined,
      load: (files: A) => Effect.Effect<Buffer | Pair, TlsFileError>,
    ) => (files === undefined ? Effect.succeed(undefined) : load(files)) as Loader<never>
    const clientLoader = optional(clientFiles, loadPair)
    const loaders: { readonly [K in keyof Material]: Loader<Material[K]> } = {
      server: serverFiles === clientFiles ? clientLoader : optional(serverFiles, loadPair),
      client: clientLoader,
      peer: optional(peerFiles, loadPair),
      ca: optional(tls.trustedCaFile, (file) => loadCa("trusted-ca-file", file)),
      peerCa: optional(tls.peerTrustedCaFile, (file) => loadCa("peer-trusted-ca-file", file)),
      crl: optional(tls.clientCrlFile, loadCrl),
    }

    const build = (m: Material) => ({
      server:
        m.server === undefined
          ? undefined
          : definedOnly<ServerTls>({
              ...protocol,
              cert: m.server.cert,
              key: m.server.key,
              ca: m.ca,
              crl: m.crl,
              requestCert: tls.clientCertAuth,
              rejectUnauthorized: tls.clientCertAuth,
            }),
      /** Client requests to members: our client pair (else the peer pair), our CA (else the peer CA). */
      towardsMembers: definedOnly<ClientTls>({
        ...protocol,
        cert: (m.client ?? m.peer)?.cert,
        key: (m.client ?? m.peer)?.key,
        ca: m.ca ?? m.peerCa,
        rejectUnauthorized: tls.autoTls ? false : undefined,
      }),
      /** `GET /members` on peer URLs: the peer settings. */
      towardsPeers: definedOnly<ClientTls>({
        ...protocol,
        cert: m.peer?.cert,
        key: m.peer?.key,
        ca: m.peerCa,
        rejectUnauthorized: tls.peerAutoTls ? false : undefined,
      }),
    })

    let material: Material = {
      server: yield* loaders.server.pipe(Effect.mapError(toUsage)),
      client: yield* loaders.client.pipe(Effect.mapError(toUsage)),
      peer: yield* loaders.peer.pipe(Effect.mapError(toUsage)),
      ca: yield* loaders.ca.pipe(Effect.mapError(toUsage)),
      peerCa: yield* loaders.peerCa.pipe(Effect.mapError(toUsage)),
      crl: yield* loaders.crl.pipe(Effect.mapError(toUsage)),
    }
    let current = build(material)
    if (current.server !== undefined) {
      const server = current.server
      yield* Effect.try({
        try: () => void createSecureContext(server),
        catch: (error) =>
          new UsageError({ message: `TLS settings rejected by OpenSSL: ${reason(error)}` }),
      })
    }

    const reloadListeners: Array<() => void> = []
    const lock = yield* Effect.makeSemaphore(1)

    /** Re-reads every file; each piece that fails keeps its old value and is logged by name. */
    const reload: Effect.Effect<void> = lock
      .withPermits(1)(
        Effect.gen(function* () {
          const next: Record<string, unknown> = { ...material }
          let kept = 0
          // The listeners' pair is often the client pair: read once, reported once.
          const results = new Map<Loader<unknown>, Either.Either<unknown, TlsFileError>>()
          for (const [piece, load] of Object.entries(loaders) as Array<
            [keyof Material, Loader<unknown>]
          >) {
            const known = results.get(load)
            const loaded = known ?? (yield* Effect.either(load))
            results.set(load, loaded)
            if (Either.isRight(loaded)) {
              next[piece] = loaded.right
              continue
            }
            if (known !== undefined) continue
            kept += 1
            yield* Effect.logError(
              "TLS file unusable on reload; keeping the previous material",
            ).pipe(
              Effect.annotateLogs({
                file: loaded.left.file,
                error: "TlsFileError",
                reason: loaded.left.message,
              }),
            )
          }
          const candidate = build(next as unknown as Material)
          if (candidate.server !== undefined) {
            const server = candidate.server
            const rejected = yield* Effect.either(
              Effect.try(() => void createSecureContext(server)),
            )
            if (Either.isLeft(rejected)) {
              return yield* Effect.logError(
                "TLS settings rejected on reload; keeping the previous material",
              ).pipe(
                Effect.annotateLogs({ error: "TlsFileError", reason: reason(rejected.left.error) }),
              )
            }
          }
          material = next as unknown as Material
          current = candidate
          for (const listener of reloadListeners) {
            yield* Effect.try(listener).pipe(
              Effect.catchAll((error) =>
                Effect.logError("applying reloaded TLS material failed").pipe(
                  Effect.annotateLogs({ reason: reason(error.error) }),
                ),
              ),
            )
          }
          yield* Effect.logInfo("TLS material reloaded").pipe(Effect.annotateLogs({ kept }))
        }),
      )
      .pipe(Effect.withSpan("TlsMaterial.reload"))

    return {
      /** Options for new https handshakes; `undefined` when no listener needs TLS material. */
      server: (): ServerTls | undefined => current.server,
      /** Options for each new connection to a member's client URL. */
      towardsMembers: (): ClientTls => current.towardsMembers,
      /** Options for each new connection to a peer URL (`GET /members`). */
      towardsPeers: (): ClientTls => current.towardsPeers,
      /** `listener` runs after every successful reload, to hand the new material to servers and pools. */
      onReload: (listener: () => void): void => {
        reloadListeners.push(listener)
      },
      reload,
    } as const
  }),
}) {}

/**
 * `--auto-tls` without `--cert-file`: etcd's proxy keeps a self-signed pair in
 * `<data-dir>/proxy/clientCerts` and reuses it on the next start.
 */
const autoTlsFiles = (listenUrls: ReadonlyArray<URL>, metricsUrls: ReadonlyArray<URL>) =>
  Effect.gen(function* () {
    const { proxyDir } = yield* DataDir
    const dir = join(proxyDir, "clientCerts")
    const certFile = join(dir, "cert.pem")
    const keyFile = join(dir, "key.pem")
    if (!(existsSync(certFile) && existsSync(keyFile))) {
      yield* Effect.try({
        try: () => {
          const pair = selfSignedCertificate(
            [...listenUrls, ...metricsUrls].map((url) => url.hostname),
          )
          mkdirSync(dir, { recursive: true, mode: 0o700 })
          writeFileSync(certFile, pair.cert, { mode: 0o644 })
          writeFileSync(keyFile, pair.key, { mode: 0o600 })
        },
        catch: (error) =>
          new UsageError({
            message: `--auto-tls: cannot write a self-signed certificate to ${dir}: ${reason(error)}`,
          }),
      })
      yield* Effect.logWarning("--auto-tls: generated a self-signed certificate").pipe(
        Effect.annotateLogs({ file: certFile }),
      )
    }
    return { prefix: "", certFile, keyFile } satisfies PairFiles
  })
