/** The proxy's flags: etcd's names, `ETCD_*` variables, YAML config files, and `--help`. */
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import { parse as parseYaml } from "yaml"
import {
  makeProxyConfig,
  noTls,
  parseBool,
  parseChoice,
  parseHostPort,
  parseInitialCluster,
  parseMillis,
  parseMode,
  parsePositiveInt,
  parseUrl,
  parseUrlList,
  splitList,
  type ClusterSource,
  type ProxyConfigShape,
} from "../domain/Config.js"
import { UsageError } from "../domain/Errors.js"

export interface FlagSpec {
  readonly name: string
  readonly default: string
  readonly help: string
  readonly boolean?: true
  /** Repeating the flag adds to the list instead of replacing it. */
  readonly list?: true
  readonly aliases?: ReadonlyArray<string>
}

export const proxyFlags: ReadonlyArray<FlagSpec> = [
  {
    name: "proxy",
    default: "on",
    help: "on (read-write) or readonly; off is refused: this program only proxies",
  },
  {
    name: "listen-client-urls",
    default: "http://localhost:2379",
    help: "comma list of http:// and https:// URLs to serve on",
    list: true,
  },
  { name: "initial-cluster", default: "none", help: "name=peerURL,... : the members' peer URLs" },
  { name: "discovery", default: "none", help: "v2 discovery URL to find the cluster" },
  {
    name: "discovery-srv",
    default: "none",
    help: "DNS domain whose SRV records list the members' peer URLs",
  },
  {
    name: "discovery-srv-name",
    default: "none",
    help: "suffix for the SRV service names (_etcd-server-<name>)",
  },
  {
    name: "discovery-srv-dns",
    default: "system resolver",
    help: "DNS server HOST:PORT for SRV look-ups",
  },
  {
    name: "discovery-fallback",
    default: "proxy",
    help: "proxy or exit: what join does when the cluster is full",
    aliases: ["proxy-fallback"],
  },
  { name: "discovery-proxy", default: "none", help: "HTTP proxy for discovery traffic only" },
  { name: "name", default: "default", help: "names the default data dir" },
  { name: "data-dir", default: "<name>.etcd", help: "proxy state lives in <data-dir>/proxy" },
  {
    name: "proxy-failure-wait",
    default: "5000",
    help: "ms a failed endpoint is skipped before it is probed",
  },
  { name: "proxy-refresh-interval", default: "30000", help: "ms between member list refreshes" },
  {
    name: "proxy-shuffle-interval",
    default: "refresh interval",
    help: "ms between endpoint order reshuffles (0: never)",
  },
  { name: "proxy-dial-timeout", default: "1000", help: "ms to connect to a member" },
  {
    name: "proxy-write-timeout",
    default: "5000",
    help: "ms a member may take to accept the bytes of a request",
  },
  {
    name: "proxy-read-timeout",
    default: "0",
    help: "ms a member may stay silent (0: none, keeps watches alive)",
  },
  {
    name: "proxy-answer-timeout",
    default: "5000",
    help: "ms a GET or HEAD (not a watch) may wait for a member's answer before the next member is tried (0: none)",
  },
  {
    name: "proxy-balance",
    default: "sticky",
    help: "sticky (first available endpoint) or round-robin",
  },
  { name: "max-request-bytes", default: "1572864", help: "larger request bodies get 413" },
  {
    name: "cors",
    default: "none",
    help: "comma list of origins the proxy answers pre-flight requests for",
    list: true,
  },
  {
    name: "cert-file",
    default: "none",
    help: "TLS certificate for https listeners (and towards members)",
  },
  { name: "key-file", default: "none", help: "TLS key for --cert-file" },
  {
    name: "trusted-ca-file",
    default: "none",
    help: "CA for client certificates and members' certificates",
  },
  {
    name: "client-cert-auth",
    default: "false",
    help: "require client certificates signed by --trusted-ca-file",
    boolean: true,
  },
  { name: "peer-cert-file", default: "none", help: "TLS certificate towards members' peer URLs" },
  { name: "peer-key-file", default: "none", help: "TLS key for --peer-cert-file" },
  { name: "peer-trusted-ca-file", default: "none", help: "CA for members' peer certificates" },
  { name: "log-level", default: "info", help: "debug, info, warn or error" },
  { name: "log-format", default: "text", help: "text (logfmt) or json" },
  {
    name: "config-file",
    default: "none",
    help: "YAML file with flag names as keys; other flags and ETCD_* are then ignored",
  },
]

export const envName = (flag: string): string => `ETCD_${flag.toUpperCase().replace(/-/g, "_")}`

const usage = (message: string) => new UsageError({ message })

export type ParsedArgs =
  | { readonly _tag: "Help" }
  | { readonly _tag: "Version" }
  | {
      readonly _tag: "Run"
      readonly values: ReadonlyMap<string, string>
      readonly warnings: ReadonlyArray<string>
    }

const lookupIn = (specs: ReadonlyArray<FlagSpec>) => {
  const byName = new Map<string, FlagSpec>()
  for (const spec of specs) {
    byName.set(spec.name, spec)
    for (const alias of spec.aliases ?? []) byName.set(alias, spec)
  }
  return byName
}

/**
 * Reads `--flag value`, `--flag=value` and etcd's `-flag value` into raw values by flag name.
 * Repeating a list flag adds to it; repeating any other flag keeps the last value, as Go's
 * flag package does.
 */
export const readArgv = (
  specs: ReadonlyArray<FlagSpec>,
  argv: ReadonlyArray<string>,
): Either.Either<{ values: Map<string, string>; help: boolean; version: boolean }, UsageError> => {
  const byName = lookupIn(specs)
  const values = new Map<string, string>()
  let help = false
  let version = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (!arg.startsWith("-") || arg === "-" || arg === "--") {
      return Either.left(
        usage(`unexpected argument ${JSON.stringify(arg)}; flags only (see --help)`),
      )
    }
    const body = arg.replace(/^--?/, "")
    const eq = body.indexOf("=")
    const name = eq === -1 ? body : body.slice(0, eq)
    const inline = eq === -1 ? undefined : body.slice(eq + 1)
    if (name === "help" || name === "h") {
      help = true
      continue
    }
    if (name === "version") {
      version = true
      continue
    }
    const spec = byName.get(name)
    if (spec === undefined)
      return Either.left(usage(`unknown flag ${arg.split("=")[0]} (see --help)`))
    let value: string
    if (inline !== undefined) value = inline
    else if (spec.boolean === true) value = "true"
    else if (i + 1 < argv.length) value = argv[++i]!
    else return Either.left(usage(`flag --${spec.name} needs a value`))
    const before = values.get(spec.name)
    values.set(spec.name, spec.list === true && before !== undefined ? `${before},${value}` : value)
  }
  return Either.right({ values, help, version })
}

/** Merges flags with `ETCD_*` variables; one setting given both ways is a usage error. */
export const mergeEnv = (
  specs: ReadonlyArray<FlagSpec>,
  flags: ReadonlyMap<string, string>,
  env: Readonly<Record<string, string | undefined>>,
): Either.Either<{ values: Map<string, string>; warnings: Array<string> }, UsageError> => {
  const values = new Map(flags)
  const known = new Set<string>()
  for (const spec of specs) {
    for (const name of [spec.name, ...(spec.aliases ?? [])]) {
      const variable = envName(name)
      known.add(variable)
      const fromEnv = env[variable]
      if (fromEnv === undefined) continue
      if (flags.has(spec.name)) {
        return Either.left(
          usage(`--${spec.name} and ${variable} are both set; set only one of them`),
        )
      }
      if (values.has(spec.name)) {
        return Either.left(
          usage(`${variable} repeats another variable for --${spec.name}; set only one`),
        )
      }
      values.set(spec.name, fromEnv)
    }
  }
  const warnings = Object.keys(env)
    .filter((variable) => variable.startsWith("ETCD_") && !known.has(variable))
    .sort()
    .map((variable) => `unrecognized environment variable ${variable}, ignored`)
  return Either.right({ values, warnings })
}

/** A YAML config file's keys as raw flag values; keys etcd members use are ignored with a warning. */
export const readConfigFile = (
  specs: ReadonlyArray<FlagSpec>,
  file: string,
  text: string,
): Either.Either<{ values: Map<string, string>; warnings: Array<string> }, UsageError> => {
  let doc: unknown
  try {
    doc = parseYaml(text)
  } catch (error) {
    return Either.left(
      usage(`--config-file ${file} is not valid YAML: ${(error as Error).message.split("\n")[0]}`),
    )
  }
  if (doc === null || doc === undefined) doc = {}
  if (typeof doc !== "object" || Array.isArray(doc)) {
    return Either.left(
      usage(`--config-file ${file} must be a YAML mapping of flag names to values`),
    )
  }
  const byName = lookupIn(specs)
  const values = new Map<string, string>()
  const warnings: Array<string> = []
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    const spec = byName.get(key)
    if (spec === undefined) {
      warnings.push(`config file key ${JSON.stringify(key)} is not a proxy setting, ignored`)
      continue
    }
    if (value === null || value === undefined) continue
    if (Array.isArray(value)) values.set(spec.name, value.map(String).join(","))
    else if (typeof value === "object") {
      return Either.left(
        usage(`--config-file ${file}: ${key} must be a value or a list, not a mapping`),
      )
    } else values.set(spec.name, String(value))
  }
  return Either.right({ values, warnings })
}

/** Turns raw flag values into the validated configuration; the first bad value is the error. */
export const buildConfig = (
  values: ReadonlyMap<string, string>,
): Either.Either<ProxyConfigShape, UsageError> =>
  Either.gen(function* () {
    const get = (flag: string): string | undefined => {
      const value = values.get(flag)
      return value === undefined || value.trim() === "" ? undefined : value
    }
    const opt = <A>(
      flag: string,
      parse: (flag: string, value: string) => Either.Either<A, UsageError>,
    ) => {
      const value = get(flag)
      return value === undefined ? Either.right(undefined) : parse(flag, value)
    }

    const sources = ["initial-cluster", "discovery", "discovery-srv"].filter(
      (f) => get(f) !== undefined,
    )
    if (sources.length > 1) {
      return yield* Either.left(
        usage(
          `${sources.map((f) => `--${f}`).join(" and ")} are all set; choose one cluster source`,
        ),
      )
    }
    const initialCluster = yield* opt("initial-cluster", parseInitialCluster)
    const discoveryUrl = yield* opt("discovery", (flag, value) => parseDiscoveryUrl(flag, value))
    const srv = get("discovery-srv")
    const cluster: ClusterSource =
      initialCluster !== undefined
        ? { _tag: "InitialCluster", members: initialCluster }
        : discoveryUrl !== undefined
          ? { _tag: "DiscoveryUrl", url: discoveryUrl }
          : srv !== undefined
            ? {
                _tag: "DiscoverySrv",
                domain: srv.trim(),
                serviceName: get("discovery-srv-name")?.trim(),
              }
            : { _tag: "SavedOnly" }

    const mode = (yield* opt("proxy", parseMode)) ?? "readwrite"
    const listenUrls = yield* parseUrlList(
      "listen-client-urls",
      get("listen-client-urls") ?? "http://localhost:2379",
      { listen: true },
    )
    const name = get("name") ?? "default"
    const refreshInterval = yield* parseMillis(
      "proxy-refresh-interval",
      get("proxy-refresh-interval") ?? "30000",
    )
    if (Duration.toMillis(refreshInterval) === 0) {
      return yield* Either.left(
        usage('invalid value "0" for --proxy-refresh-interval: must be above 0'),
      )
    }
    const dialTimeout = yield* parseMillis(
      "proxy-dial-timeout",
      get("proxy-dial-timeout") ?? "1000",
    )
    if (Duration.toMillis(dialTimeout) === 0) {
      return yield* Either.left(
        usage('invalid value "0" for --proxy-dial-timeout: must be above 0'),
      )
    }
    const balance = yield* parseChoice(["sticky", "round-robin"] as const)(
      "proxy-balance",
      get("proxy-balance") ?? "sticky",
    )
    return makeProxyConfig(cluster, {
      mode,
      listenUrls,
      name,
      dataDir: get("data-dir") ?? `${name}.etcd`,
      failureWait: yield* parseMillis("proxy-failure-wait", get("proxy-failure-wait") ?? "5000"),
      refreshInterval,
      shuffleInterval: (yield* opt("proxy-shuffle-interval", parseMillis)) ?? refreshInterval,
      dialTimeout,
      writeTimeout: yield* parseMillis("proxy-write-timeout", get("proxy-write-timeout") ?? "5000"),
      readTimeout: yield* parseMillis("proxy-read-timeout", get("proxy-read-timeout") ?? "0"),
      answerTimeout: yield* parseMillis(
        "proxy-answer-timeout",
        get("proxy-answer-timeout") ?? "5000",
      ),
      balance,
      maxRequestBytes: yield* parsePositiveInt(
        "max-request-bytes",
        get("max-request-bytes") ?? "1572864",
      ),
      cors: splitList(get("cors") ?? ""),
      tls: {
        ...noTls,
        certFile: get("cert-file"),
        keyFile: get("key-file"),
        trustedCaFile: get("trusted-ca-file"),
        clientCertAuth: (yield* opt("client-cert-auth", parseBool)) ?? false,
        peerCertFile: get("peer-cert-file"),
        peerKeyFile: get("peer-key-file"),
        peerTrustedCaFile: get("peer-trusted-ca-file"),
      },
      discoveryFallback: yield* parseChoice(["proxy", "exit"] as const)(
        "discovery-fallback",
        get("discovery-fallback") ?? "proxy",
      ),
      discoveryProxy: yield* opt("discovery-proxy", (flag, value) => parseUrl(flag, value)),
      discoverySrvDns: yield* opt("discovery-srv-dns", parseHostPort),
      logLevel: yield* parseChoice(["debug", "info", "warn", "error"] as const)(
        "log-level",
        get("log-level") ?? "info",
      ),
      logFormat: yield* parseChoice(["text", "json"] as const)(
        "log-format",
        get("log-format") ?? "text",
      ),
    })
  })

/** A discovery URL keeps its path (the token); it only needs to be http or https. */
const parseDiscoveryUrl = (flag: string, value: string): Either.Either<URL, UsageError> => {
  if (!URL.canParse(value.trim())) {
    return Either.left(usage(`invalid value ${JSON.stringify(value)} for --${flag}: not a URL`))
  }
  const url = new URL(value.trim())
  return url.protocol === "http:" || url.protocol === "https:"
    ? Either.right(url)
    : Either.left(
        usage(`invalid value ${JSON.stringify(value)} for --${flag}: scheme must be http or https`),
      )
}

/** `--help`: every flag with its default and variable. */
export const helpText = (
  command: string,
  summary: string,
  specs: ReadonlyArray<FlagSpec>,
): string => {
  const rows = specs.map((spec) => {
    const names = [spec.name, ...(spec.aliases ?? [])].map((n) => `--${n}`).join(", ")
    return `  ${names}${spec.boolean === true ? "" : " VALUE"}\n      ${spec.help}\n      default: ${spec.default}; env: ${[spec.name, ...(spec.aliases ?? [])].map(envName).join(", ")}`
  })
  return `${summary}\n\nUsage: ${command}\n\nFlags (also -flag value, --flag=value):\n${rows.join("\n")}\n  --help\n      this text\n  --version\n      print the version\n`
}
