/** The validated proxy configuration, and the pure parsers that turn flag values into it. */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import { UsageError } from "./Errors.js"

export type ProxyMode = "readwrite" | "readonly"
export type Balance = "sticky" | "round-robin"
export type LogLevelName = "debug" | "info" | "warn" | "error"
export type LogFormat = "text" | "json"
export type DiscoveryFallback = "proxy" | "exit"

export interface InitialMember {
  readonly name: string
  readonly peerUrl: URL
}

/**
 * Where the member list comes from when no saved cluster file exists (SPEC §2). `SavedOnly`:
 * no flag given, which is fine only while `<data-dir>/proxy/cluster` exists.
 */
export type ClusterSource =
  | { readonly _tag: "SavedOnly" }
  | { readonly _tag: "InitialCluster"; readonly members: ReadonlyArray<InitialMember> }
  | { readonly _tag: "DiscoveryUrl"; readonly url: URL }
  | {
      readonly _tag: "DiscoverySrv"
      readonly domain: string
      readonly serviceName: string | undefined
    }

export type TlsVersion = "TLS1.2" | "TLS1.3"

export interface TlsFiles {
  readonly certFile: string | undefined
  readonly keyFile: string | undefined
  readonly trustedCaFile: string | undefined
  readonly clientCertAuth: boolean
  readonly peerCertFile: string | undefined
  readonly peerKeyFile: string | undefined
  readonly peerTrustedCaFile: string | undefined
  /** `--client-crl-file`: client certificates it revokes are refused. */
  readonly clientCrlFile: string | undefined
  /** `--cipher-suites`: etcd's (Go's) suite names; empty means Node's defaults. */
  readonly cipherSuites: ReadonlyArray<string>
  readonly minVersion: TlsVersion | undefined
  readonly maxVersion: TlsVersion | undefined
  /** `--auto-tls`: a self-signed certificate for https listeners when no --cert-file is given. */
  readonly autoTls: boolean
  /** `--peer-auto-tls`: towards members, accept their self-signed certificates. */
  readonly peerAutoTls: boolean
}

export interface ProxyConfigShape {
  readonly mode: ProxyMode
  readonly listenUrls: ReadonlyArray<URL>
  readonly cluster: ClusterSource
  readonly name: string
  readonly dataDir: string
  readonly failureWait: Duration.Duration
  readonly refreshInterval: Duration.Duration
  readonly shuffleInterval: Duration.Duration
  readonly dialTimeout: Duration.Duration
  readonly writeTimeout: Duration.Duration
  readonly readTimeout: Duration.Duration
  /** `--proxy-answer-timeout` (ours): a GET or HEAD without a response head by then goes to the next endpoint. */
  readonly answerTimeout: Duration.Duration
  readonly balance: Balance
  readonly maxRequestBytes: number
  readonly cors: ReadonlyArray<string>
  readonly tls: TlsFiles
  readonly discoveryFallback: DiscoveryFallback
  readonly discoveryProxy: URL | undefined
  readonly discoverySrvDns: { readonly host: string; readonly port: number } | undefined
  readonly logLevel: LogLevelName
  readonly logFormat: LogFormat
  /** `--log-outputs`: `stderr`, `stdout` or file paths. */
  readonly logOutputs: ReadonlyArray<string>
  /** `--listen-metrics-urls`: listeners for /metrics, /livez, /readyz and /health only. */
  readonly metricsUrls: ReadonlyArray<URL>
  /** `--max-concurrent-streams` (etcd 3.5): HTTP/2 streams one client connection may open at once. */
  readonly maxConcurrentStreams: number
}

/** The configuration every service reads; built once at the edge from flags, env or a file. */
export class ProxyConfig extends Context.Tag("etcd-proxy/ProxyConfig")<
  ProxyConfig,
  ProxyConfigShape
>() {}

export const noTls: TlsFiles = {
  certFile: undefined,
  keyFile: undefined,
  trustedCaFile: undefined,
  clientCertAuth: false,
  peerCertFile: undefined,
  peerKeyFile: undefined,
  peerTrustedCaFile: undefined,
  clientCrlFile: undefined,
  cipherSuites: [],
  minVersion: undefined,
  maxVersion: undefined,
  autoTls: false,
  peerAutoTls: false,
}

/** etcd's defaults for everything but the cluster source. */
export const makeProxyConfig = (
  cluster: ClusterSource,
  overrides: Partial<ProxyConfigShape> = {},
): ProxyConfigShape => {
  const refreshInterval = overrides.refreshInterval ?? Duration.millis(30_000)
  const name = overrides.name ?? "default"
  return {
    mode: "readwrite",
    listenUrls: [new URL("http://localhost:2379")],
    name,
    dataDir: `${name}.etcd`,
    failureWait: Duration.millis(5_000),
    shuffleInterval: refreshInterval,
    dialTimeout: Duration.millis(1_000),
    writeTimeout: Duration.millis(5_000),
    readTimeout: Duration.zero,
    answerTimeout: Duration.millis(5_000),
    balance: "sticky",
    maxRequestBytes: 1_572_864,
    cors: [],
    tls: noTls,
    discoveryFallback: "proxy",
    discoveryProxy: undefined,
    discoverySrvDns: undefined,
    logLevel: "info",
    logFormat: "text",
    logOutputs: ["stderr"],
    metricsUrls: [],
    maxConcurrentStreams: 256,
    ...overrides,
    refreshInterval,
    cluster,
  }
}

// ---------------------------------------------------------------------------
// Value parsers: each takes the flag name for its one-line error.

type Parsed<A> = Either.Either<A, UsageError>

const invalid = (flag: string, value: string, expected: string): UsageError =>
  new UsageError({ message: `invalid value ${JSON.stringify(value)} for --${flag}: ${expected}` })

export const parseChoice =
  <const C extends string>(choices: ReadonlyArray<C>) =>
  (flag: string, value: string): Parsed<C> =>
    (choices as ReadonlyArray<string>).includes(value)
      ? Either.right(value as C)
      : Either.left(invalid(flag, value, `expected one of ${choices.join(", ")}`))

/** `on` and `readonly` as etcd spells them; YAML's boolean `true` arrives here as "true". */
export const parseMode = (flag: string, value: string): Parsed<ProxyMode> => {
  switch (value) {
    case "on":
    case "true":
    case "readwrite":
      return Either.right("readwrite")
    case "readonly":
      return Either.right("readonly")
    case "off":
    case "false":
      return Either.left(
        new UsageError({
          message: `--${flag}=${value}: etcd-proxy only proxies; use "on" or "readonly" (to run an etcd member, run etcd, or "etcd-proxy join")`,
        }),
      )
    default:
      return Either.left(invalid(flag, value, "expected on or readonly"))
  }
}

const durationPattern = /^(\d+)(ms|s|m|h)?$/
const unitMillis = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const

/** etcd takes these as whole milliseconds; a unit suffix (`ms`, `s`, `m`, `h`) is accepted too. */
export const parseMillis = (flag: string, value: string): Parsed<Duration.Duration> => {
  const match = durationPattern.exec(value.trim())
  if (match === null) {
    return Either.left(invalid(flag, value, "expected milliseconds, e.g. 5000 or 5s"))
  }
  const millis = Number(match[1]) * unitMillis[(match[2] ?? "ms") as keyof typeof unitMillis]
  return Number.isSafeInteger(millis)
    ? Either.right(Duration.millis(millis))
    : Either.left(invalid(flag, value, "too large"))
}

export const parsePositiveInt = (flag: string, value: string): Parsed<number> => {
  const n = Number(value.trim())
  return /^\d+$/.test(value.trim()) && Number.isSafeInteger(n) && n > 0
    ? Either.right(n)
    : Either.left(invalid(flag, value, "expected a positive whole number"))
}

export const parseBool = (flag: string, value: string): Parsed<boolean> => {
  switch (value.toLowerCase()) {
    case "true":
    case "1":
    case "t":
      return Either.right(true)
    case "false":
    case "0":
    case "f":
      return Either.right(false)
    default:
      return Either.left(invalid(flag, value, "expected true or false"))
  }
}

const isIpLiteral = (host: string): boolean =>
  /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || (host.startsWith("[") && host.endsWith("]"))

/** One URL in etcd's form: http or https, `host:port`, no path, query or credentials. */
export const parseUrl = (
  flag: string,
  value: string,
  options: { readonly listen?: boolean } = {},
): Parsed<URL> => {
  let url: URL
  try {
    url = new URL(value.trim())
  } catch {
    return Either.left(invalid(flag, value, "not a URL"))
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return Either.left(invalid(flag, value, "scheme must be http or https"))
  }
  if ((url.pathname !== "/" && url.pathname !== "") || url.search !== "" || url.hash !== "") {
    return Either.left(invalid(flag, value, "must not have a path, query or fragment"))
  }
  if (url.username !== "" || url.password !== "") {
    return Either.left(invalid(flag, value, "must not carry credentials"))
  }
  if (!/^[a-z]+:\/\/(\[[^\]]*\]|[^/:@]*):\d+\/?$/i.test(value.trim())) {
    return Either.left(invalid(flag, value, 'address must be in the form "host:port"'))
  }
  if (options.listen === true && !isIpLiteral(url.hostname) && url.hostname !== "localhost") {
    return Either.left(invalid(flag, value, "listen host must be an IP address or localhost"))
  }
  return Either.right(url)
}

export const splitList = (value: string): ReadonlyArray<string> =>
  value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")

export const parseUrlList = (
  flag: string,
  value: string,
  options: { readonly listen?: boolean } = {},
): Parsed<ReadonlyArray<URL>> => {
  const items = splitList(value)
  if (items.length === 0) return Either.left(invalid(flag, value, "expected at least one URL"))
  return Either.all(items.map((item) => parseUrl(flag, item, options)))
}

/** `name=peerURL,...` as etcd's `--initial-cluster`; a name may appear once per peer URL. */
export const parseInitialCluster = (
  flag: string,
  value: string,
): Parsed<ReadonlyArray<InitialMember>> => {
  const items = splitList(value)
  if (items.length === 0) {
    return Either.left(invalid(flag, value, "expected name=peerURL[,name=peerURL...]"))
  }
  return Either.all(
    items.map((item): Parsed<InitialMember> => {
      const eq = item.indexOf("=")
      if (eq <= 0) return Either.left(invalid(flag, item, "expected name=peerURL"))
      return Either.map(parseUrl(flag, item.slice(eq + 1)), (peerUrl) => ({
        name: item.slice(0, eq),
        peerUrl,
      }))
    }),
  )
}

/** `HOST:PORT` of a DNS server. */
export const parseHostPort = (
  flag: string,
  value: string,
): Parsed<{ readonly host: string; readonly port: number }> => {
  const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(value.trim())
  const port = match === null ? NaN : Number(match[2])
  if (match === null || port < 1 || port > 65535) {
    return Either.left(invalid(flag, value, "expected HOST:PORT"))
  }
  return Either.right({ host: match[1]!.replace(/^\[|\]$/g, ""), port })
}
