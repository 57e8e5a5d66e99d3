/**
 * The validated proxy configuration, its flag table (the one source of every flag's name,
 * variable, default, help text and parser), and the pure parsers behind it.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import { UsageError } from "./Errors.js"
import { labelOf, rawValue, readDefaulted, readFlag, type Flag, type Settings } from "./Flag.js"

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

// ---------------------------------------------------------------------------
// Value parsers: each takes the label of where the value came from (`--flag`, `ETCD_FLAG`, a
// config file key) for its one-line error.

type Parsed<A> = Either.Either<A, UsageError>

const invalid = (label: string, value: string, expected: string): UsageError =>
  new UsageError({ message: `invalid value ${JSON.stringify(value)} for ${label}: ${expected}` })

export const parseText = (_label: string, value: string): Parsed<string> =>
  Either.right(value.trim())

export const parseChoice =
  <const C extends string>(choices: ReadonlyArray<C>) =>
  (label: string, value: string): Parsed<C> =>
    (choices as ReadonlyArray<string>).includes(value.trim())
      ? Either.right(value.trim() as C)
      : Either.left(invalid(label, value, `expected one of ${choices.join(", ")}`))

/** `on` and `readonly` as etcd spells them; YAML 1.1's boolean `on` arrives here as "true". */
export const parseMode = (label: string, value: string): Parsed<ProxyMode> => {
  switch (value.trim()) {
    case "on":
    case "true":
    case "readwrite":
      return Either.right("readwrite")
    case "readonly":
      return Either.right("readonly")
    case "off":
    case "false":
      return Either.left(
        invalid(
          label,
          value,
          'etcd-proxy only proxies; use "on" or "readonly" (to run an etcd member, run etcd, or "etcd-proxy join")',
        ),
      )
    default:
      return Either.left(invalid(label, value, "expected on or readonly"))
  }
}

const durationPattern = /^(\d+)(ms|s|m|h)?$/
const unitMillis = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const

/** etcd takes these as whole milliseconds; a unit suffix (`ms`, `s`, `m`, `h`) is accepted too. */
export const parseMillis = (label: string, value: string): Parsed<Duration.Duration> => {
  const match = durationPattern.exec(value.trim())
  if (match === null) {
    return Either.left(invalid(label, value, "expected milliseconds, e.g. 5000 or 5s"))
  }
  const millis = Number(match[1]) * unitMillis[(match[2] ?? "ms") as keyof typeof unitMillis]
  return Number.isSafeInteger(millis)
    ? Either.right(Duration.millis(millis))
    : Either.left(invalid(label, value, "too large"))
}

/** A period that must not be zero: a zero refresh interval or dial timeout would spin. */
export const parsePositiveMillis = (label: string, value: string): Parsed<Duration.Duration> =>
  Either.flatMap(parseMillis(label, value), (duration) =>
    Duration.toMillis(duration) === 0
      ? Either.left(invalid(label, value, "must be above 0"))
      : Either.right(duration),
  )

const wholeNumber = (label: string, value: string, max: number): Parsed<number> => {
  const text = value.trim()
  const n = Number(text)
  return /^\d+$/.test(text) && Number.isSafeInteger(n) && n > 0 && n <= max
    ? Either.right(n)
    : Either.left(
        invalid(
          label,
          value,
          max === Number.MAX_SAFE_INTEGER
            ? "expected a positive whole number"
            : `expected a whole number from 1 to ${max}`,
        ),
      )
}

export const parsePositiveInt = (label: string, value: string): Parsed<number> =>
  wholeNumber(label, value, Number.MAX_SAFE_INTEGER)

/** etcd's `--max-concurrent-streams` is a uint32. */
export const parseUint32 = (label: string, value: string): Parsed<number> =>
  wholeNumber(label, value, 4_294_967_295)

/** Go's `strconv.ParseBool`, as etcd's boolean flags read their values. */
export const parseBool = (label: string, value: string): Parsed<boolean> => {
  switch (value.trim()) {
    case "1":
    case "t":
    case "T":
    case "true":
    case "TRUE":
    case "True":
      return Either.right(true)
    case "0":
    case "f":
    case "F":
    case "false":
    case "FALSE":
    case "False":
      return Either.right(false)
    default:
      return Either.left(invalid(label, value, "expected true or false"))
  }
}

const isIpLiteral = (host: string): boolean =>
  /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || (host.startsWith("[") && host.endsWith("]"))

/** One URL in etcd's form: http or https, `host:port`, no path, query or credentials. */
export const parseUrl = (
  label: string,
  value: string,
  options: { readonly listen?: boolean } = {},
): Parsed<URL> => {
  let url: URL
  try {
    url = new URL(value.trim())
  } catch {
    return Either.left(invalid(label, value, "not a URL"))
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return Either.left(invalid(label, value, "scheme must be http or https"))
  }
  if ((url.pathname !== "/" && url.pathname !== "") || url.search !== "" || url.hash !== "") {
    return Either.left(invalid(label, value, "must not have a path, query or fragment"))
  }
  if (url.username !== "" || url.password !== "") {
    return Either.left(invalid(label, value, "must not carry credentials"))
  }
  if (!/^[a-z]+:\/\/(\[[^\]]*\]|[^/:@]*):\d+\/?$/i.test(value.trim())) {
    return Either.left(invalid(label, value, 'address must be in the form "host:port"'))
  }
  if (options.listen === true && !isIpLiteral(url.hostname) && url.hostname !== "localhost") {
    return Either.left(invalid(label, value, "listen host must be an IP address or localhost"))
  }
  return Either.right(url)
}

export const splitList = (value: string): ReadonlyArray<string> =>
  value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")

export const parseList = (_label: string, value: string): Parsed<ReadonlyArray<string>> =>
  Either.right(splitList(value))

export const parseUrlList = (
  label: string,
  value: string,
  options: { readonly listen?: boolean } = {},
): Parsed<ReadonlyArray<URL>> => {
  const items = splitList(value)
  if (items.length === 0) return Either.left(invalid(label, value, "expected at least one URL"))
  return Either.all(items.map((item) => parseUrl(label, item, options)))
}

export const parseListenUrls = (label: string, value: string): Parsed<ReadonlyArray<URL>> =>
  parseUrlList(label, value, { listen: true })

/** `name=peerURL,...` as etcd's `--initial-cluster`; a name may appear once per peer URL. */
export const parseInitialCluster = (
  label: string,
  value: string,
): Parsed<ReadonlyArray<InitialMember>> => {
  const items = splitList(value)
  if (items.length === 0) {
    return Either.left(invalid(label, value, "expected name=peerURL[,name=peerURL...]"))
  }
  return Either.all(
    items.map((item): Parsed<InitialMember> => {
      const eq = item.indexOf("=")
      if (eq <= 0) return Either.left(invalid(label, item, "expected name=peerURL"))
      return Either.map(parseUrl(label, item.slice(eq + 1)), (peerUrl) => ({
        name: item.slice(0, eq),
        peerUrl,
      }))
    }),
  )
}

/** A discovery URL keeps its path (the token); it only needs to be http or https. */
export const parseDiscoveryUrl = (label: string, value: string): Parsed<URL> => {
  if (!URL.canParse(value.trim())) return Either.left(invalid(label, value, "not a URL"))
  const url = new URL(value.trim())
  return url.protocol === "http:" || url.protocol === "https:"
    ? Either.right(url)
    : Either.left(invalid(label, value, "scheme must be http or https"))
}

/** An HTTP proxy URL for discovery traffic. */
export const parseProxyUrl = (label: string, value: string): Parsed<URL> => parseUrl(label, value)

/** `HOST:PORT` of a DNS server. */
export const parseHostPort = (
  label: string,
  value: string,
): Parsed<{ readonly host: string; readonly port: number }> => {
  const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(value.trim())
  const port = match === null ? NaN : Number(match[2])
  if (match === null || port < 1 || port > 65535) {
    return Either.left(invalid(label, value, "expected HOST:PORT"))
  }
  return Either.right({ host: match[1]!.replace(/^\[|\]$/g, ""), port })
}

/**
 * The suite names etcd accepts for `--cipher-suites`: Go's `tls.CipherSuites()` and
 * `tls.InsecureCipherSuites()` (IANA names), and the two short ChaCha20 names etcd adds.
 */
export const cipherSuiteNames: ReadonlyArray<string> = [
  "TLS_RSA_WITH_RC4_128_SHA",
  "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
  "TLS_RSA_WITH_AES_128_CBC_SHA",
  "TLS_RSA_WITH_AES_256_CBC_SHA",
  "TLS_RSA_WITH_AES_128_CBC_SHA256",
  "TLS_RSA_WITH_AES_128_GCM_SHA256",
  "TLS_RSA_WITH_AES_256_GCM_SHA384",
  "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
  "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
  "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
  "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
  "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
  "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
  "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
  "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
  "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
  "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
  "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
  "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
  "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
  "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
  "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
  "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
  "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
  "TLS_AES_128_GCM_SHA256",
  "TLS_AES_256_GCM_SHA384",
  "TLS_CHACHA20_POLY1305_SHA256",
]

const tls13Suites = new Set([
  "TLS_AES_128_GCM_SHA256",
  "TLS_AES_256_GCM_SHA384",
  "TLS_CHACHA20_POLY1305_SHA256",
])

export const parseCipherSuites = (label: string, value: string): Parsed<ReadonlyArray<string>> => {
  const names = splitList(value)
  const unknown = names.find((name) => !cipherSuiteNames.includes(name))
  return unknown === undefined
    ? Either.right(names)
    : Either.left(
        invalid(
          label,
          value,
          `${JSON.stringify(unknown)} is not a TLS cipher suite etcd knows (Go's names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)`,
        ),
      )
}

/** `TLS1.2` or `TLS1.3`, etcd's spellings; empty is "the runtime decides". */
export const parseTlsVersion = (label: string, value: string): Parsed<TlsVersion | undefined> => {
  const text = value.trim()
  if (text === "") return Either.right(undefined)
  return text === "TLS1.2" || text === "TLS1.3"
    ? Either.right(text)
    : Either.left(invalid(label, value, "expected TLS1.2 or TLS1.3"))
}

/**
 * etcd's `--log-outputs`: `default` (stderr), `stderr`, `stdout`, or file paths; etcd refuses
 * `default` together with anything else. `systemd/journal` is written to stderr, which the
 * journal of a systemd service captures.
 */
export const parseLogOutputs = (label: string, value: string): Parsed<ReadonlyArray<string>> => {
  const outputs = splitList(value)
  if (outputs.length === 0)
    return Either.left(invalid(label, value, "expected at least one output"))
  if (outputs.length > 1 && outputs.includes("default")) {
    return Either.left(
      invalid(label, value, '"default" cannot be combined with other outputs (as in etcd)'),
    )
  }
  const mapped = outputs.map((output) =>
    output === "default" || output === "systemd/journal" ? "stderr" : output,
  )
  return Either.right([...new Set(mapped)])
}

export type LoggerName = "zap" | "capnslog"

export const parseLogger = parseChoice(["zap", "capnslog"] as const)

/** etcd's levels; `panic` and `fatal` (etcd logs only its own crashes there) log errors here. */
export const parseLogLevel = (label: string, value: string): Parsed<LogLevelName> =>
  Either.map(
    parseChoice(["debug", "info", "warn", "error", "panic", "fatal"] as const)(label, value),
    (level) => (level === "panic" || level === "fatal" ? "error" : level),
  )

// ---------------------------------------------------------------------------
// The proxy's flags.

const flag = <A>(spec: Flag<A>): Flag<A> => spec
const withDefault = <A>(spec: Flag<A> & { readonly default: string }) => spec

/**
 * Every flag the proxy reads, in help order. Descriptions say what the flag does here; where
 * etcd's meaning or default differs, they say that too.
 */
export const proxyFlag = {
  proxy: withDefault({
    name: "proxy",
    kind: "value",
    placeholder: "on|readonly",
    default: "on",
    origin: "etcd",
    description:
      "on: forward everything; readonly: forward only requests that cannot change the cluster (others get 501). off is refused: this program only proxies",
    parse: parseMode,
  }),
  listenClientUrls: withDefault({
    name: "listen-client-urls",
    kind: "list",
    placeholder: "URL[,URL]",
    default: "http://localhost:2379",
    origin: "etcd",
    description:
      "http:// and https:// URLs to serve clients on (HTTP/1.1 and gRPC on each); the host is an IP address or localhost",
    parse: parseListenUrls,
  }),
  initialCluster: flag({
    name: "initial-cluster",
    kind: "value",
    placeholder: "NAME=PEER-URL[,...]",
    origin: "etcd",
    description: "the members' names and peer URLs; the proxy asks them for the member list",
    parse: parseInitialCluster,
  }),
  discovery: flag({
    name: "discovery",
    kind: "value",
    placeholder: "URL",
    origin: "etcd",
    description:
      "v2 discovery URL to find the cluster; the proxy never registers and answers 503 until the cluster is complete",
    parse: parseDiscoveryUrl,
  }),
  discoverySrv: flag({
    name: "discovery-srv",
    kind: "value",
    placeholder: "DOMAIN",
    origin: "etcd",
    description:
      "DNS domain whose SRV records (_etcd-server-ssl._tcp, _etcd-server._tcp) name the members' peer URLs",
    parse: parseText,
  }),
  discoverySrvName: flag({
    name: "discovery-srv-name",
    kind: "value",
    placeholder: "NAME",
    origin: "etcd",
    description: "suffix of the SRV service names: _etcd-server-NAME._tcp",
    parse: parseText,
  }),
  discoverySrvDns: flag({
    name: "discovery-srv-dns",
    kind: "value",
    placeholder: "HOST:PORT",
    defaultText: "the system's resolver",
    origin: "ours",
    description: "DNS server to ask for the SRV records (split-horizon DNS)",
    parse: parseHostPort,
  }),
  discoveryFallback: withDefault({
    name: "discovery-fallback",
    aliases: ["proxy-fallback"],
    kind: "value",
    choices: ["proxy", "exit"],
    default: "proxy",
    origin: "etcd",
    description: "what join does when the discovery cluster is full: run this proxy, or exit 1",
    parse: parseChoice(["proxy", "exit"] as const),
  }),
  discoveryProxy: flag({
    name: "discovery-proxy",
    kind: "value",
    placeholder: "URL",
    origin: "etcd",
    description: "HTTP proxy for the traffic to the discovery service only",
    parse: parseProxyUrl,
  }),
  name: withDefault({
    name: "name",
    kind: "value",
    placeholder: "NAME",
    default: "default",
    origin: "etcd",
    description: "this machine's name; it names the default data dir",
    parse: parseText,
  }),
  dataDir: flag({
    name: "data-dir",
    kind: "value",
    placeholder: "DIR",
    defaultText: "<name>.etcd",
    origin: "etcd",
    description: "the proxy keeps the cluster's peer URLs and its lock in DIR/proxy",
    parse: parseText,
  }),
  failureWait: withDefault({
    name: "proxy-failure-wait",
    kind: "value",
    placeholder: "MS",
    default: "5000",
    origin: "etcd",
    description:
      "how long a failed endpoint is skipped before a GET /health probe may bring it back",
    parse: parseMillis,
  }),
  refreshInterval: withDefault({
    name: "proxy-refresh-interval",
    kind: "value",
    placeholder: "MS",
    default: "30000",
    origin: "etcd",
    description: "time between member list refreshes",
    parse: parsePositiveMillis,
  }),
  shuffleInterval: flag({
    name: "proxy-shuffle-interval",
    kind: "value",
    placeholder: "MS",
    defaultText: "the refresh interval",
    origin: "ours",
    description:
      "time between reshuffles of the endpoint order, so that proxies spread over members (0: never)",
    parse: parseMillis,
  }),
  dialTimeout: withDefault({
    name: "proxy-dial-timeout",
    kind: "value",
    placeholder: "MS",
    default: "1000",
    origin: "etcd",
    description: "time to connect to a member, per attempt",
    parse: parsePositiveMillis,
  }),
  writeTimeout: withDefault({
    name: "proxy-write-timeout",
    kind: "value",
    placeholder: "MS",
    default: "5000",
    origin: "etcd",
    description:
      "time a member may take to accept the bytes of a request, per attempt (0: no limit)",
    parse: parseMillis,
  }),
  readTimeout: withDefault({
    name: "proxy-read-timeout",
    kind: "value",
    placeholder: "MS",
    default: "0",
    origin: "etcd",
    description:
      "time a member may stay silent while answering (0: no limit, which keeps watches open)",
    parse: parseMillis,
  }),
  answerTimeout: withDefault({
    name: "proxy-answer-timeout",
    kind: "value",
    placeholder: "MS",
    default: "5000",
    origin: "ours",
    description:
      "a GET or HEAD (not a watch) without an answer by then goes to the next member, and the hung one is marked failed; writes keep waiting (0: never)",
    parse: parseMillis,
  }),
  balance: withDefault({
    name: "proxy-balance",
    kind: "value",
    choices: ["sticky", "round-robin"],
    default: "sticky",
    origin: "ours",
    description:
      "sticky: every request to the first available member (as etcd); round-robin: rotate",
    parse: parseChoice(["sticky", "round-robin"] as const),
  }),
  maxRequestBytes: withDefault({
    name: "max-request-bytes",
    kind: "value",
    placeholder: "BYTES",
    default: "1572864",
    origin: "etcd",
    description: "larger request bodies are answered 413 and never forwarded",
    parse: parsePositiveInt,
  }),
  maxConcurrentStreams: withDefault({
    name: "max-concurrent-streams",
    kind: "value",
    placeholder: "N",
    default: "256",
    origin: "etcd",
    description:
      "HTTP/2 (gRPC) streams one client connection may have open at once; etcd's default is unlimited, ours is bounded",
    parse: parseUint32,
  }),
  cors: flag({
    name: "cors",
    kind: "list",
    placeholder: "ORIGIN[,ORIGIN]",
    origin: "etcd",
    description:
      "origins the proxy answers CORS pre-flight requests for itself, replacing the members' headers; unset: CORS passes through",
    parse: parseList,
  }),
  listenMetricsUrls: flag({
    name: "listen-metrics-urls",
    kind: "list",
    placeholder: "URL[,URL]",
    origin: "etcd",
    description:
      "extra listeners serving only /metrics, /livez, /readyz and /health; nothing is forwarded there",
    parse: parseListenUrls,
  }),
  certFile: flag({
    name: "cert-file",
    kind: "value",
    placeholder: "FILE",
    origin: "etcd",
    description: "TLS certificate for https listeners, and the client certificate towards members",
    parse: parseText,
  }),
  keyFile: flag({
    name: "key-file",
    kind: "value",
    placeholder: "FILE",
    origin: "etcd",
    description: "the private key of the --cert-file certificate",
    parse: parseText,
  }),
  trustedCaFile: flag({
    name: "trusted-ca-file",
    kind: "value",
    placeholder: "FILE",
    origin: "etcd",
    description:
      "CA for client certificates (--client-cert-auth) and for the members' certificates",
    parse: parseText,
  }),
  clientCertAuth: withDefault({
    name: "client-cert-auth",
    kind: "boolean",
    default: "false",
    origin: "etcd",
    description: "https listeners require a client certificate signed by --trusted-ca-file",
    parse: parseBool,
  }),
  clientCrlFile: flag({
    name: "client-crl-file",
    kind: "value",
    placeholder: "FILE",
    origin: "etcd",
    description: "PEM certificate revocation lists: client certificates they revoke are refused",
    parse: parseText,
  }),
  cipherSuites: flag({
    name: "cipher-suites",
    kind: "list",
    placeholder: "SUITE[,SUITE]",
    defaultText: "the runtime's",
    origin: "etcd",
    description:
      "TLS 1.2 cipher suites by etcd's (Go's IANA) names, on every TLS side; TLS 1.3 suites cannot be chosen, as in Go",
    parse: parseCipherSuites,
  }),
  tlsMinVersion: flag({
    name: "tls-min-version",
    kind: "value",
    choices: ["TLS1.2", "TLS1.3"],
    defaultText: "TLS1.2",
    origin: "etcd",
    description: "lowest TLS version, on every TLS side",
    parse: parseTlsVersion,
  }),
  tlsMaxVersion: flag({
    name: "tls-max-version",
    kind: "value",
    choices: ["TLS1.2", "TLS1.3"],
    defaultText: "the runtime's highest",
    origin: "etcd",
    description: "highest TLS version, on every TLS side",
    parse: parseTlsVersion,
  }),
  autoTls: withDefault({
    name: "auto-tls",
    kind: "boolean",
    default: "false",
    origin: "etcd",
    description:
      "https listeners without --cert-file use a self-signed certificate kept in DIR/proxy/clientCerts; as in etcd's proxy, members' certificates on client URLs are then not verified",
    parse: parseBool,
  }),
  peerCertFile: flag({
    name: "peer-cert-file",
    kind: "value",
    placeholder: "FILE",
    origin: "etcd",
    description:
      "client certificate towards the members' peer URLs (and their client URLs when --cert-file is unset)",
    parse: parseText,
  }),
  peerKeyFile: flag({
    name: "peer-key-file",
    kind: "value",
    placeholder: "FILE",
    origin: "etcd",
    description: "the private key of the --peer-cert-file certificate",
    parse: parseText,
  }),
  peerTrustedCaFile: flag({
    name: "peer-trusted-ca-file",
    kind: "value",
    placeholder: "FILE",
    origin: "etcd",
    description:
      "CA for the members' peer certificates (and client ones when --trusted-ca-file is unset)",
    parse: parseText,
  }),
  peerAutoTls: withDefault({
    name: "peer-auto-tls",
    kind: "boolean",
    default: "false",
    origin: "etcd",
    description:
      "as in etcd's proxy, members' certificates on peer URLs (GET /members) are not verified: for members with --peer-auto-tls",
    parse: parseBool,
  }),
  logLevel: withDefault({
    name: "log-level",
    kind: "value",
    choices: ["debug", "info", "warn", "error", "panic", "fatal"],
    default: "info",
    origin: "etcd",
    description: "lowest level logged; etcd's panic and fatal log errors only",
    parse: parseLogLevel,
  }),
  debug: withDefault({
    name: "debug",
    kind: "boolean",
    default: "false",
    origin: "etcd",
    description: "etcd 3.4's spelling of --log-level debug",
    parse: parseBool,
  }),
  logFormat: withDefault({
    name: "log-format",
    kind: "value",
    choices: ["text", "json"],
    default: "text",
    origin: "ours",
    description: "text (logfmt) or json (zap's line shape: level, ts, msg, flat fields)",
    parse: parseChoice(["text", "json"] as const),
  }),
  logOutputs: withDefault({
    name: "log-outputs",
    aliases: ["log-output"],
    kind: "list",
    placeholder: "OUTPUT[,OUTPUT]",
    default: "default",
    origin: "etcd",
    description: "where logs go: stderr (etcd's default), stdout, or files (appended to)",
    parse: parseLogOutputs,
  }),
  logger: withDefault({
    name: "logger",
    kind: "value",
    choices: ["zap", "capnslog"],
    default: "zap",
    origin: "etcd",
    description:
      "accepted for etcd's command lines; lines always have zap's shape (capnslog warns)",
    parse: parseLogger,
  }),
  configFile: flag({
    name: "config-file",
    kind: "value",
    placeholder: "FILE",
    origin: "etcd",
    description:
      "YAML file whose keys are these flags' names (and etcd's); other flags and their variables are then ignored, as etcd does",
    parse: parseText,
  }),
} as const

export const proxyFlags: ReadonlyArray<Flag> = Object.values(proxyFlag)

/** The configuration and what the operator should be told about it. */
export interface BuiltProxyConfig {
  readonly config: ProxyConfigShape
  readonly warnings: ReadonlyArray<string>
}

/** Turns the settings into the validated configuration; the first bad value is the error. */
export const buildProxyConfig = (settings: Settings): Either.Either<BuiltProxyConfig, UsageError> =>
  Either.gen(function* () {
    const f = proxyFlag
    const warnings: Array<string> = []
    const sources = [f.initialCluster, f.discovery, f.discoverySrv].filter(
      (source) => rawValue(settings, source) !== undefined,
    )
    if (sources.length > 1) {
      return yield* Either.left(
        new UsageError({
          message: `${sources.map((source) => labelOf(settings, source)).join(" and ")} are ${sources.length === 2 ? "both" : "all"} set; choose one cluster source`,
        }),
      )
    }
    const initialCluster = yield* readFlag(settings, f.initialCluster)
    const discoveryUrl = yield* readFlag(settings, f.discovery)
    const srv = yield* readFlag(settings, f.discoverySrv)
    const cluster: ClusterSource =
      initialCluster !== undefined
        ? { _tag: "InitialCluster", members: initialCluster }
        : discoveryUrl !== undefined
          ? { _tag: "DiscoveryUrl", url: discoveryUrl }
          : srv !== undefined
            ? {
                _tag: "DiscoverySrv",
                domain: srv,
                serviceName: yield* readFlag(settings, f.discoverySrvName),
              }
            : { _tag: "SavedOnly" }

    const name = yield* readDefaulted(settings, f.name)
    const refreshInterval = yield* readDefaulted(settings, f.refreshInterval)

    const tls: TlsFiles = {
      certFile: yield* readFlag(settings, f.certFile),
      keyFile: yield* readFlag(settings, f.keyFile),
      trustedCaFile: yield* readFlag(settings, f.trustedCaFile),
      clientCertAuth: yield* readDefaulted(settings, f.clientCertAuth),
      peerCertFile: yield* readFlag(settings, f.peerCertFile),
      peerKeyFile: yield* readFlag(settings, f.peerKeyFile),
      peerTrustedCaFile: yield* readFlag(settings, f.peerTrustedCaFile),
      clientCrlFile: yield* readFlag(settings, f.clientCrlFile),
      cipherSuites: (yield* readFlag(settings, f.cipherSuites)) ?? [],
      minVersion: yield* readFlag(settings, f.tlsMinVersion),
      maxVersion: yield* readFlag(settings, f.tlsMaxVersion),
      autoTls: yield* readDefaulted(settings, f.autoTls),
      peerAutoTls: yield* readDefaulted(settings, f.peerAutoTls),
    }
    // etcd's own checks on these (embed.Config's TLS validation).
    if (tls.minVersion === "TLS1.3" && tls.maxVersion === "TLS1.2") {
      return yield* Either.left(
        new UsageError({
          message: `${labelOf(settings, f.tlsMinVersion)} TLS1.3 is above ${labelOf(settings, f.tlsMaxVersion)} TLS1.2`,
        }),
      )
    }
    if (tls.cipherSuites.length > 0 && tls.cipherSuites.every((name) => tls13Suites.has(name))) {
      return yield* Either.left(
        new UsageError({
          message: `${labelOf(settings, f.cipherSuites)} names only TLS 1.3 suites, which cannot be chosen (as in Go): name TLS 1.2 suites or leave it out`,
        }),
      )
    }
    if (tls.minVersion === "TLS1.3" && tls.cipherSuites.length > 0) {
      return yield* Either.left(
        new UsageError({
          message: `${labelOf(settings, f.cipherSuites)} cannot be used when only TLS1.3 is allowed (${labelOf(settings, f.tlsMinVersion)} TLS1.3): TLS 1.3 suites are not configurable`,
        }),
      )
    }

    if ((yield* readDefaulted(settings, f.logger)) === "capnslog") {
      warnings.push(
        `${labelOf(settings, f.logger)}=capnslog: etcd-proxy writes zap-shaped lines only (--log-format text or json)`,
      )
    }
    const debug = yield* readDefaulted(settings, f.debug)

    return {
      warnings,
      config: {
        mode: yield* readDefaulted(settings, f.proxy),
        listenUrls: yield* readDefaulted(settings, f.listenClientUrls),
        cluster,
        name,
        dataDir: (yield* readFlag(settings, f.dataDir)) ?? `${name}.etcd`,
        failureWait: yield* readDefaulted(settings, f.failureWait),
        refreshInterval,
        shuffleInterval: (yield* readFlag(settings, f.shuffleInterval)) ?? refreshInterval,
        dialTimeout: yield* readDefaulted(settings, f.dialTimeout),
        writeTimeout: yield* readDefaulted(settings, f.writeTimeout),
        readTimeout: yield* readDefaulted(settings, f.readTimeout),
        answerTimeout: yield* readDefaulted(settings, f.answerTimeout),
        balance: yield* readDefaulted(settings, f.balance),
        maxRequestBytes: yield* readDefaulted(settings, f.maxRequestBytes),
        cors: (yield* readFlag(settings, f.cors)) ?? [],
        tls,
        discoveryFallback: yield* readDefaulted(settings, f.discoveryFallback),
        discoveryProxy: yield* readFlag(settings, f.discoveryProxy),
        discoverySrvDns: yield* readFlag(settings, f.discoverySrvDns),
        logLevel: debug ? "debug" : yield* readDefaulted(settings, f.logLevel),
        logFormat: yield* readDefaulted(settings, f.logFormat),
        logOutputs: yield* readDefaulted(settings, f.logOutputs),
        metricsUrls: (yield* readFlag(settings, f.listenMetricsUrls)) ?? [],
        maxConcurrentStreams: yield* readDefaulted(settings, f.maxConcurrentStreams),
      },
    }
  })

/** Every default, from the flag table; computed once. */
const defaults: ProxyConfigShape = Either.getOrThrowWith(
  buildProxyConfig(new Map()),
  (error) => new Error(`the flag table's defaults do not parse: ${error.message}`),
).config

/**
 * A configuration for programs and tests that build one in code: the flag table's defaults,
 * with `overrides`. The data dir and shuffle interval follow `name` and the refresh interval
 * unless given, as on the command line.
 */
export const makeProxyConfig = (
  cluster: ClusterSource,
  overrides: Partial<ProxyConfigShape> = {},
): ProxyConfigShape => {
  const name = overrides.name ?? defaults.name
  const refreshInterval = overrides.refreshInterval ?? defaults.refreshInterval
  return {
    ...defaults,
    dataDir: `${name}.etcd`,
    shuffleInterval: refreshInterval,
    ...overrides,
    name,
    refreshInterval,
    cluster,
  }
}
