/** The command line (SPEC §2): etcd's flag spellings, `ETCD_*`, YAML config files, the flag table. */
import { readFileSync } from "node:fs"
import { join } from "node:path"
import * as FileSystem from "@effect/platform/FileSystem"
import { SystemError } from "@effect/platform/Error"
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import {
  buildProxyConfig,
  cipherSuiteNames,
  makeProxyConfig,
  proxyFlag,
  proxyFlags,
  type ProxyConfigShape,
} from "../../src/domain/Config.js"
import { envName, type Setting } from "../../src/domain/Flag.js"
import { tlsProtocolOptions } from "../../src/domain/TlsSettings.js"
import {
  applyConfigFile,
  ignoredWarning,
  readCommandLine,
  type CommandLine,
} from "../../src/cli/commandLine.js"
import { etcdFlags } from "../../src/cli/etcdFlags.js"
import { promoteCommand, proxyCommand } from "../../src/cli/commands.js"
import { promoteOptions } from "../../src/cli/promote.js"
import { resolveProxyConfig } from "../../src/cli/proxyConfig.js"

type Env = Record<string, string>

const read = (argv: ReadonlyArray<string>, env: Env = {}): CommandLine => {
  const result = readCommandLine(proxyCommand, argv, env)
  if (Either.isLeft(result)) throw new Error(`unexpected usage error: ${result.left.message}`)
  return result.right
}

const readError = (argv: ReadonlyArray<string>, env: Env = {}): string => {
  const result = readCommandLine(proxyCommand, argv, env)
  if (Either.isRight(result)) throw new Error(`expected a usage error for ${argv.join(" ")}`)
  return result.left.message
}

const values = (line: CommandLine) =>
  Object.fromEntries([...line.settings].map(([name, setting]) => [name, setting.value]))

const settings = (values: Record<string, string>): Map<string, Setting> =>
  new Map(Object.entries(values).map(([name, value]) => [name, { value, label: `--${name}` }]))

const config = (values: Record<string, string>): ProxyConfigShape => {
  const result = buildProxyConfig(settings(values))
  if (Either.isLeft(result)) throw new Error(`unexpected usage error: ${result.left.message}`)
  return result.right.config
}

const configError = (values: Record<string, string>): string => {
  const result = buildProxyConfig(settings(values))
  if (Either.isRight(result))
    throw new Error(`expected a usage error for ${JSON.stringify(values)}`)
  return result.left.message
}

/** The whole path the command takes: command line and environment to configuration. */
const fromArgs = (argv: ReadonlyArray<string>, env: Env = {}) => {
  const line = readCommandLine(proxyCommand, argv, env)
  return Either.flatMap(line, (l) => buildProxyConfig(l.settings))
}

const cluster = { "initial-cluster": "m1=http://127.0.0.1:2380" }

describe("reading the command line", () => {
  it("reads --flag value, --flag=value, -flag value and -flag=value", () => {
    for (const argv of [["--name", "a"], ["--name=a"], ["-name", "a"], ["-name=a"]]) {
      expect(values(read(argv)).name, argv.join(" ")).toBe("a")
    }
    expect(values(read(["--initial-cluster=m1=http://127.0.0.1:2380"]))["initial-cluster"]).toBe(
      "m1=http://127.0.0.1:2380",
    )
  })

  it("a boolean flag alone is true, and takes =false", () => {
    expect(values(read(["--client-cert-auth"]))["client-cert-auth"]).toBe("true")
    expect(values(read(["-client-cert-auth", "--name", "a"]))).toEqual({
      "client-cert-auth": "true",
      name: "a",
    })
    expect(values(read(["--client-cert-auth=false"]))["client-cert-auth"]).toBe("false")
    expect(config({ ...cluster, "client-cert-auth": "true" }).tls.clientCertAuth).toBe(true)
    expect(config({ ...cluster, "client-cert-auth": "false" }).tls.clientCertAuth).toBe(false)
    expect(config(cluster).tls.clientCertAuth).toBe(false)
    expect(configError({ ...cluster, "client-cert-auth": "maybe" })).toContain(
      'invalid value "maybe" for --client-cert-auth',
    )
  })

  it("repeating a list flag appends; repeating another flag keeps the last value", () => {
    const line = read([
      "--listen-client-urls",
      "http://127.0.0.1:2379",
      "--listen-client-urls=http://127.0.0.1:4001",
      "--cors",
      "http://a",
      "--cors",
      "http://b",
      "--name",
      "first",
      "--name",
      "second",
    ])
    expect(values(line)["listen-client-urls"]).toBe("http://127.0.0.1:2379,http://127.0.0.1:4001")
    expect(values(line).name).toBe("second")
    const built = config({ ...cluster, ...values(line) })
    expect(built.listenUrls.map((u) => u.href)).toEqual([
      "http://127.0.0.1:2379/",
      "http://127.0.0.1:4001/",
    ])
    expect(built.cors).toEqual(["http://a", "http://b"])
  })

  it("a flag etcd does not know is unknown; every etcd flag is accepted", () => {
    expect(readError(["--proxy-bogus", "1"])).toContain("unknown flag --proxy-bogus")
    expect(readError(["--proxy-bogus=1"])).toContain("unknown flag --proxy-bogus")
    // @effect/cli's built-ins are not flags of etcd-proxy.
    expect(readError(["--wizard"])).toContain("unknown flag --wizard")
    for (const flag of etcdFlags) {
      const argv = flag.kind === "boolean" ? [`--${flag.name}`] : [`--${flag.name}`, "x"]
      expect(Either.isRight(readCommandLine(proxyCommand, argv, {})), flag.name).toBe(true)
    }
  })

  it("member flags take their value (or not, for booleans), and are named in one warning", () => {
    const line = read([
      "--initial-cluster-token",
      "tok",
      "-enable-v2",
      "--name",
      "a",
      "--snapshot-count=5",
      "--enable-pprof",
      "--initial-cluster-state",
      "new",
      "--listen-peer-urls",
      "http://127.0.0.1:2380",
    ])
    expect(values(line)).toEqual({ name: "a" })
    expect(line.ignored).toEqual([
      "--initial-cluster-token",
      "--enable-v2",
      "--snapshot-count",
      "--enable-pprof",
      "--initial-cluster-state",
      "--listen-peer-urls",
    ])
    const warning = ignoredWarning(line)!
    for (const label of line.ignored) expect(warning).toContain(label)
  })

  it("a flag without its value, or a stray argument, is a usage error naming it", () => {
    expect(readError(["--name"])).toContain("--name needs a value")
    expect(readError(["--name", "a", "--proxy-refresh-interval"])).toContain(
      "--proxy-refresh-interval needs a value",
    )
    expect(readError(["--snapshot-count"])).toContain("--snapshot-count needs a value")
    expect(readError(["--name", "a", "stray"])).toContain('"stray"')
  })

  it("--proxy-fallback is an alias of --discovery-fallback, and --log-output of --log-outputs", () => {
    const line = read(["--proxy-fallback", "exit", "--log-output", "stdout"])
    expect(values(line)["discovery-fallback"]).toBe("exit")
    const built = config({ ...cluster, ...values(line) })
    expect(built.discoveryFallback).toBe("exit")
    expect(built.logOutputs).toEqual(["stdout"])
  })

  it("help, version and completions are recognised in etcd's spellings too", () => {
    expect(read(["-h"]).builtin).toEqual({ _tag: "Help" })
    expect(read(["--name", "a", "-help"]).builtin).toEqual({ _tag: "Help" })
    expect(read(["-version"]).builtin).toEqual({ _tag: "Version" })
    expect(read(["--completions", "zsh"]).builtin).toEqual({ _tag: "Completions", shell: "zsh" })
    expect(read(["--completions=fish"]).builtin).toEqual({ _tag: "Completions", shell: "fish" })
    expect(readError(["--completions", "tcsh"])).toContain('"tcsh" for --completions')
  })
})

describe("ETCD_* variables", () => {
  it("fill in what the command line does not set", () => {
    expect(envName("proxy-refresh-interval")).toBe("ETCD_PROXY_REFRESH_INTERVAL")
    const line = read(["--name", "a"], {
      ETCD_PROXY_REFRESH_INTERVAL: "10000",
      ETCD_INITIAL_CLUSTER: "m1=http://127.0.0.1:2380",
      ETCD_CIPHER_SUITES: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
      PATH: "/usr/bin",
    })
    expect(line.warnings).toEqual([])
    expect(line.settings.get("proxy-refresh-interval")).toEqual({
      value: "10000",
      label: "ETCD_PROXY_REFRESH_INTERVAL",
    })
    const built = Either.getOrThrow(buildProxyConfig(line.settings)).config
    expect(Duration.toMillis(built.refreshInterval)).toBe(10_000)
    expect(built.name).toBe("a")
    expect(built.cluster._tag).toBe("InitialCluster")
    expect(built.tls.cipherSuites).toEqual(["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"])
  })

  it("a bad value from a variable is reported under the variable's name", () => {
    const fromEnv = fromArgs([], { ...envOf(cluster), ETCD_PROXY_REFRESH_INTERVAL: "x" })
    expect(Either.isLeft(fromEnv) && fromEnv.left.message).toBe(
      'invalid value "x" for ETCD_PROXY_REFRESH_INTERVAL: expected milliseconds, e.g. 5000 or 5s',
    )
    const fromFlag = fromArgs(["--proxy-refresh-interval", "x"], envOf(cluster))
    expect(Either.isLeft(fromFlag) && fromFlag.left.message).toContain(
      "for --proxy-refresh-interval:",
    )
    for (const [variable, value] of [
      ["ETCD_LISTEN_CLIENT_URLS", "http://myhost:2379"],
      ["ETCD_CIPHER_SUITES", "RC4"],
      ["ETCD_TLS_MIN_VERSION", "TLS1.1"],
      ["ETCD_PROXY", "off"],
      ["ETCD_MAX_CONCURRENT_STREAMS", "0"],
      ["ETCD_CLIENT_CERT_AUTH", "yes please"],
    ] as const) {
      const result = fromArgs([], { ...envOf(cluster), [variable]: value })
      expect(Either.isLeft(result) && result.left.message, variable).toContain(` ${variable}`)
      expect(Either.isLeft(result) && result.left.message, variable).not.toContain("--")
    }
    const sources = fromArgs(["--discovery", "http://127.0.0.1:1/t"], envOf(cluster))
    expect(Either.isLeft(sources) && sources.left.message).toContain(
      "ETCD_INITIAL_CLUSTER and --discovery are both set",
    )
  })

  it("a flag and its variable both set is a usage error naming both, even when the variable is empty", () => {
    for (const value of ["10000", ""]) {
      expect(
        readError(["--proxy-refresh-interval", "5000"], { ETCD_PROXY_REFRESH_INTERVAL: value }),
      ).toBe(
        "--proxy-refresh-interval and ETCD_PROXY_REFRESH_INTERVAL are both set; set only one of them",
      )
    }
    // Member flags too: etcd refuses the pair whatever the flag means.
    expect(readError(["--snapshot-count", "5"], { ETCD_SNAPSHOT_COUNT: "10" })).toContain(
      "--snapshot-count and ETCD_SNAPSHOT_COUNT",
    )
  })

  it("an empty variable sets nothing", () => {
    expect(read([], { ETCD_NAME: "" }).settings.has("name")).toBe(false)
  })

  it("an alias's variable is the same setting", () => {
    expect(values(read([], { ETCD_PROXY_FALLBACK: "exit" }))["discovery-fallback"]).toBe("exit")
    expect(readError(["--discovery-fallback", "proxy"], { ETCD_PROXY_FALLBACK: "exit" })).toContain(
      "ETCD_PROXY_FALLBACK",
    )
    expect(
      readError([], { ETCD_DISCOVERY_FALLBACK: "proxy", ETCD_PROXY_FALLBACK: "exit" }),
    ).toContain("ETCD_DISCOVERY_FALLBACK and ETCD_PROXY_FALLBACK both set --discovery-fallback")
  })

  it("member variables join the one warning; variables etcd does not know are warned about each", () => {
    const line = read([], {
      ETCD_LISTEN_PEER_URLS: "http://127.0.0.1:2380",
      ETCD_INITIAL_CLUSTER_TOKEN: "tok",
      ETCD_NAME: "a",
      ETCD_FOO: "1",
      ETCDCTL_API: "3",
    })
    expect([...line.ignored].sort()).toEqual([
      "ETCD_INITIAL_CLUSTER_TOKEN",
      "ETCD_LISTEN_PEER_URLS",
    ])
    expect(line.warnings).toEqual(["unrecognized environment variable ETCD_FOO, ignored"])
    expect(values(line).name).toBe("a")
  })
})

const envOf = (values: Record<string, string>): Env =>
  Object.fromEntries(Object.entries(values).map(([name, value]) => [envName(name), value]))

describe("the configuration", () => {
  it("has the flag table's defaults, and makeProxyConfig has the same ones", () => {
    const built = config(cluster)
    expect(built.mode).toBe("readwrite")
    expect(built.listenUrls.map((u) => u.href)).toEqual(["http://localhost:2379/"])
    expect(built.name).toBe("default")
    expect(built.dataDir).toBe("default.etcd")
    expect(Duration.toMillis(built.failureWait)).toBe(5_000)
    expect(Duration.toMillis(built.refreshInterval)).toBe(30_000)
    expect(Duration.toMillis(built.shuffleInterval)).toBe(30_000)
    expect(Duration.toMillis(built.dialTimeout)).toBe(1_000)
    expect(Duration.toMillis(built.writeTimeout)).toBe(5_000)
    expect(Duration.toMillis(built.readTimeout)).toBe(0)
    expect(Duration.toMillis(built.answerTimeout)).toBe(5_000)
    expect(built.balance).toBe("sticky")
    expect(built.maxRequestBytes).toBe(1_572_864)
    expect(built.maxConcurrentStreams).toBe(256)
    expect(built.discoveryFallback).toBe("proxy")
    expect(built.logLevel).toBe("info")
    expect(built.logFormat).toBe("text")
    expect(built.logOutputs).toEqual(["stderr"])
    expect(built.metricsUrls).toEqual([])
    expect(built.tls).toMatchObject({ autoTls: false, peerAutoTls: false, cipherSuites: [] })
    expect(makeProxyConfig(built.cluster)).toEqual(built)
    const named = makeProxyConfig(built.cluster, {
      name: "edge",
      refreshInterval: Duration.seconds(7),
    })
    expect(named).toEqual(config({ ...cluster, name: "edge", "proxy-refresh-interval": "7000" }))
  })

  it("the data dir defaults to <name>.etcd and the shuffle interval to the refresh interval", () => {
    expect(config({ ...cluster, name: "edge" }).dataDir).toBe("edge.etcd")
    expect(config({ ...cluster, name: "edge", "data-dir": "/var/lib/p" }).dataDir).toBe(
      "/var/lib/p",
    )
    const built = config({ ...cluster, "proxy-refresh-interval": "7000" })
    expect(Duration.toMillis(built.shuffleInterval)).toBe(7_000)
    const own = config({
      ...cluster,
      "proxy-refresh-interval": "7000",
      "proxy-shuffle-interval": "2000",
    })
    expect(Duration.toMillis(own.shuffleInterval)).toBe(2_000)
  })

  it("--proxy: on and readonly; off is refused naming on and readonly", () => {
    expect(config({ ...cluster, proxy: "on" }).mode).toBe("readwrite")
    expect(config({ ...cluster, proxy: "readonly" }).mode).toBe("readonly")
    const off = configError({ ...cluster, proxy: "off" })
    expect(off).toContain('invalid value "off" for --proxy')
    expect(off).toContain('"on"')
    expect(off).toContain('"readonly"')
    expect(configError({ ...cluster, proxy: "maybe" })).toContain('"maybe" for --proxy')
  })

  it("durations are milliseconds, with an optional unit; --proxy-answer-timeout 0 means none", () => {
    const ms = (value: string) =>
      Duration.toMillis(config({ ...cluster, "proxy-failure-wait": value }).failureWait)
    expect(ms("5000")).toBe(5_000)
    expect(ms("5s")).toBe(5_000)
    expect(ms("250ms")).toBe(250)
    expect(ms("2m")).toBe(120_000)
    expect(ms("0")).toBe(0)
    for (const bad of ["abc", "5x", "-1", "1.5", "5 s"]) {
      const message = configError({ ...cluster, "proxy-failure-wait": bad })
      expect(message, bad).toContain(`${JSON.stringify(bad)} for --proxy-failure-wait`)
    }
    expect(
      Duration.toMillis(config({ ...cluster, "proxy-answer-timeout": "0" }).answerTimeout),
    ).toBe(0)
    expect(
      Duration.toMillis(config({ ...cluster, "proxy-answer-timeout": "1500" }).answerTimeout),
    ).toBe(1_500)
    expect(configError({ ...cluster, "proxy-refresh-interval": "0" })).toContain(
      "--proxy-refresh-interval: must be above 0",
    )
    expect(configError({ ...cluster, "proxy-dial-timeout": "0" })).toContain("--proxy-dial-timeout")
  })

  it("a bad listen URL names the flag and the value", () => {
    for (const [value, reason] of [
      ["http://127.0.0.1", "host:port"],
      ["http://127.0.0.1:2379/v2", "path"],
      ["unix://127.0.0.1:2379", "scheme"],
      ["http://myhost:2379", "IP address or localhost"],
      ["not a url", "not a URL"],
      ["http://u:p@127.0.0.1:2379", "credentials"],
      ["http://127.0.0.1:2379?x=1", "query"],
    ] as const) {
      for (const flag of ["listen-client-urls", "listen-metrics-urls"]) {
        const message = configError({ ...cluster, [flag]: value })
        expect(message, value).toContain(`${JSON.stringify(value)} for --${flag}`)
        expect(message, value).toContain(reason)
      }
    }
  })

  it("--listen-metrics-urls is a list of listen URLs", () => {
    const built = config({
      ...cluster,
      "listen-metrics-urls": "http://127.0.0.1:9379,https://[::1]:9380",
    })
    expect(built.metricsUrls.map((u) => u.href)).toEqual([
      "http://127.0.0.1:9379/",
      "https://[::1]:9380/",
    ])
  })

  it("cluster sources: initial cluster, discovery URL or SRV, and only one of them", () => {
    const members = config({
      "initial-cluster":
        "m1=http://10.0.0.1:2380, m2=https://10.0.0.2:2380,m2=http://10.0.0.3:2380",
    }).cluster
    expect(members._tag === "InitialCluster" && members.members.map((m) => m.name)).toEqual([
      "m1",
      "m2",
      "m2",
    ])
    expect(configError({ "initial-cluster": "http://10.0.0.1:2380" })).toContain(
      "--initial-cluster",
    )
    const url = config({ discovery: "https://discovery.etcd.io/abc" }).cluster
    expect(url._tag === "DiscoveryUrl" && url.url.pathname).toBe("/abc")
    const srv = config({ "discovery-srv": "example.com", "discovery-srv-name": "east" }).cluster
    expect(srv).toEqual({ _tag: "DiscoverySrv", domain: "example.com", serviceName: "east" })
    expect(config({}).cluster._tag).toBe("SavedOnly")
    expect(configError({ discovery: "ftp://x/abc" })).toContain("--discovery")
    const two = configError({ ...cluster, discovery: "http://127.0.0.1:8087/abc" })
    expect(two).toBe("--initial-cluster and --discovery are both set; choose one cluster source")
  })

  it("--cipher-suites takes the names etcd takes, and nothing else", () => {
    expect(cipherSuiteNames).toContain("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305")
    const all = config({ ...cluster, "cipher-suites": cipherSuiteNames.join(",") })
    expect(all.tls.cipherSuites).toEqual(cipherSuiteNames)
    const two = config({
      ...cluster,
      "cipher-suites":
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    })
    expect(two.tls.cipherSuites).toEqual([
      "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
      "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ])
    // The run time maps every name the flag accepts (domain/TlsSettings.ts).
    expect(Either.isRight(tlsProtocolOptions(cipherSuiteNames, undefined, undefined))).toBe(true)
    expect(
      configError({ ...cluster, "cipher-suites": "TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384" }),
    ).toContain("--cipher-suites names only TLS 1.3 suites")
    for (const bad of ["ECDHE-RSA-AES128-GCM-SHA256", "tls_aes_128_gcm_sha256", "TLS_FOO"]) {
      expect(configError({ ...cluster, "cipher-suites": bad }), bad).toContain(
        `${JSON.stringify(bad)} is not a TLS cipher suite etcd knows`,
      )
    }
  })

  it("--tls-min-version and --tls-max-version take etcd's spellings, min not above max", () => {
    const tls = config({ ...cluster, "tls-min-version": "TLS1.2", "tls-max-version": "TLS1.3" })
    expect([tls.tls.minVersion, tls.tls.maxVersion]).toEqual(["TLS1.2", "TLS1.3"])
    expect(config(cluster).tls.minVersion).toBeUndefined()
    for (const bad of ["TLS1.1", "1.2", "tls1.2", "TLSv1.3"]) {
      expect(configError({ ...cluster, "tls-min-version": bad }), bad).toContain(
        "expected TLS1.2 or TLS1.3",
      )
    }
    expect(
      configError({ ...cluster, "tls-min-version": "TLS1.3", "tls-max-version": "TLS1.2" }),
    ).toBe("--tls-min-version TLS1.3 is above --tls-max-version TLS1.2")
    expect(
      configError({
        ...cluster,
        "tls-min-version": "TLS1.3",
        "cipher-suites": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
      }),
    ).toContain("--cipher-suites cannot be used when only TLS1.3 is allowed")
  })

  it("--log-outputs: stderr, stdout, files; etcd's default is stderr and stands alone", () => {
    const outputs = (value: string) => config({ ...cluster, "log-outputs": value }).logOutputs
    expect(outputs("default")).toEqual(["stderr"])
    expect(outputs("stdout")).toEqual(["stdout"])
    expect(outputs("stderr,/var/log/etcd-proxy.log")).toEqual(["stderr", "/var/log/etcd-proxy.log"])
    expect(outputs("systemd/journal")).toEqual(["stderr"])
    expect(configError({ ...cluster, "log-outputs": "default,stdout" })).toContain(
      '"default" cannot be combined',
    )
  })

  it("--log-level takes etcd's levels; --debug is etcd 3.4's debug; --logger zap or capnslog", () => {
    expect(config({ ...cluster, "log-level": "warn" }).logLevel).toBe("warn")
    expect(config({ ...cluster, "log-level": "fatal" }).logLevel).toBe("error")
    expect(config({ ...cluster, "log-level": "panic" }).logLevel).toBe("error")
    expect(configError({ ...cluster, "log-level": "trace" })).toContain("--log-level")
    expect(config({ ...cluster, debug: "true" }).logLevel).toBe("debug")
    const zap = Either.getOrThrow(buildProxyConfig(settings({ ...cluster, logger: "zap" })))
    expect(zap.warnings).toEqual([])
    const capnslog = Either.getOrThrow(
      buildProxyConfig(settings({ ...cluster, logger: "capnslog" })),
    )
    expect(capnslog.warnings.join()).toContain("--logger=capnslog")
    expect(configError({ ...cluster, logger: "logrus" })).toContain("--logger")
  })

  it("--auto-tls, --peer-auto-tls, --client-crl-file, --max-concurrent-streams", () => {
    const built = config({
      ...cluster,
      "auto-tls": "true",
      "peer-auto-tls": "true",
      "client-crl-file": "/etc/ssl/crl.pem",
      "max-concurrent-streams": "4294967295",
    })
    expect(built.tls).toMatchObject({
      autoTls: true,
      peerAutoTls: true,
      clientCrlFile: "/etc/ssl/crl.pem",
    })
    expect(built.maxConcurrentStreams).toBe(4_294_967_295)
    for (const bad of ["0", "4294967296", "-1", "many"]) {
      expect(configError({ ...cluster, "max-concurrent-streams": bad }), bad).toContain(
        "--max-concurrent-streams",
      )
    }
  })

  it("numbers and choices are validated with the flag's name", () => {
    expect(config({ ...cluster, "proxy-balance": "round-robin" }).balance).toBe("round-robin")
    expect(configError({ ...cluster, "proxy-balance": "random" })).toContain("--proxy-balance")
    expect(configError({ ...cluster, "max-request-bytes": "0" })).toContain("--max-request-bytes")
    expect(configError({ ...cluster, "max-request-bytes": "1e6" })).toContain("--max-request-bytes")
    expect(config({ ...cluster, "discovery-srv-dns": "127.0.0.1:5353" }).discoverySrvDns).toEqual({
      host: "127.0.0.1",
      port: 5353,
    })
    expect(configError({ ...cluster, "discovery-srv-dns": "127.0.0.1" })).toContain(
      "--discovery-srv-dns",
    )
  })
})

describe("config files", () => {
  const withFile = (argv: ReadonlyArray<string>, env: Env, document: unknown) => {
    const line = read(argv, env)
    const result = applyConfigFile(line, "/etc/p.yaml", document)
    if (Either.isLeft(result)) throw new Error(`unexpected usage error: ${result.left.message}`)
    return result.right
  }

  it("keys are flag names; the file replaces flags and variables, with one warning naming them", () => {
    const line = withFile(
      ["--config-file", "/etc/p.yaml", "--name", "flag", "--snapshot-count", "5"],
      { ETCD_PROXY_REFRESH_INTERVAL: "1234" },
      {
        name: "file",
        "proxy-refresh-interval": 10000,
        "initial-cluster": cluster["initial-cluster"],
      },
    )
    expect(line.settings.get("name")).toEqual({ value: "file", label: "name in /etc/p.yaml" })
    expect(line.settings.get("proxy-refresh-interval")?.value).toBe("10000")
    expect(line.warnings).toEqual([
      "--config-file is set: ignoring --name, ETCD_PROXY_REFRESH_INTERVAL, --snapshot-count, as etcd does",
    ])
    expect(line.ignored).toEqual([])
  })

  it("reads etcd's TLS sections and lists; member keys join the one warning", () => {
    const line = withFile(
      ["--config-file=/etc/p.yaml"],
      {},
      {
        "listen-client-urls": ["http://127.0.0.1:2379", "http://127.0.0.1:4001"],
        "client-transport-security": {
          "cert-file": "/c.pem",
          "key-file": "/k.pem",
          "client-cert-auth": true,
          "auto-tls": false,
        },
        "peer-transport-security": { "trusted-ca-file": "/ca.pem", "allowed-cn": "x" },
        "snapshot-count": 10000,
        "enable-v2": true,
        "wal-dir": null,
        "experimental-snapshot-catch-up-entries": 5000,
        "no-such-key": 1,
      },
    )
    const built = Either.getOrThrow(buildProxyConfig(line.settings)).config
    expect(built.listenUrls.map((u) => u.port)).toEqual(["2379", "4001"])
    expect(built.tls).toMatchObject({
      certFile: "/c.pem",
      keyFile: "/k.pem",
      clientCertAuth: true,
      peerTrustedCaFile: "/ca.pem",
    })
    expect(line.ignored).toEqual([
      "peer-transport-security.allowed-cn in /etc/p.yaml",
      "snapshot-count in /etc/p.yaml",
      "enable-v2 in /etc/p.yaml",
      "experimental-snapshot-catch-up-entries in /etc/p.yaml",
    ])
    expect(line.warnings).toEqual([
      "no-such-key in /etc/p.yaml is not an etcd or etcd-proxy setting, ignored",
    ])
  })

  it("a bad value names the key and the file; a mapping where a value belongs is refused", () => {
    const line = withFile([], { ETCD_CONFIG_FILE: "/etc/p.yaml" }, { proxy: "sometimes" })
    const built = buildProxyConfig(line.settings)
    expect(Either.isLeft(built) && built.left.message).toBe(
      'invalid value "sometimes" for proxy in /etc/p.yaml: expected on or readonly',
    )
    const nested = applyConfigFile(read([]), "/etc/p.yaml", { name: { a: "b" } })
    expect(Either.isLeft(nested) && nested.left.message).toContain("name in /etc/p.yaml")
    const list = applyConfigFile(read([]), "/etc/p.yaml", ["a"])
    expect(Either.isLeft(list) && list.left.message).toContain("mapping")
  })

  const files = (contents: Record<string, string>) =>
    FileSystem.layerNoop({
      readFileString: (path) =>
        path in contents
          ? Effect.succeed(contents[path]!)
          : Effect.fail(
              new SystemError({
                reason: "NotFound",
                module: "FileSystem",
                method: "readFileString",
                pathOrDescriptor: path,
              }),
            ),
    })

  const yaml = ["name: from-file", "initial-cluster: m1=http://127.0.0.1:2380"].join("\n")

  it.effect("resolveProxyConfig reads the file named by the flag or by ETCD_CONFIG_FILE", () =>
    Effect.gen(function* () {
      const fromFlag = yield* resolveProxyConfig(["--config-file", "/etc/p.yaml", "--name", "x"], {
        ETCD_PROXY_REFRESH_INTERVAL: "1234",
      }).pipe(Effect.provide(files({ "/etc/p.yaml": yaml })))
      expect(fromFlag.config.name).toBe("from-file")
      expect(Duration.toMillis(fromFlag.config.refreshInterval)).toBe(30_000)
      expect(fromFlag.warnings.join("\n")).toContain("ignoring --name, ETCD_PROXY_REFRESH_INTERVAL")
      const fromEnv = yield* resolveProxyConfig([], { ETCD_CONFIG_FILE: "/etc/p.yaml" }).pipe(
        Effect.provide(files({ "/etc/p.yaml": yaml })),
      )
      expect(fromEnv.config.name).toBe("from-file")
    }),
  )

  it.effect("an unreadable or malformed file is a usage error naming it", () =>
    Effect.gen(function* () {
      const missing = yield* resolveProxyConfig(["--config-file=/nope.yaml"], {}).pipe(
        Effect.provide(files({})),
        Effect.flip,
      )
      expect(missing.message).toBe("cannot read --config-file /nope.yaml: NotFound")
      const bad = yield* resolveProxyConfig([], { ETCD_CONFIG_FILE: "/bad.yaml" }).pipe(
        Effect.provide(files({ "/bad.yaml": "name: [unclosed" })),
        Effect.flip,
      )
      expect(bad.message).toContain("ETCD_CONFIG_FILE /bad.yaml is not valid YAML")
      // One sentence: the parser's source excerpt, and the colon that introduces it, left out.
      expect(bad.message).toMatch(/at line \d+, column \d+$/)
    }),
  )
})

describe("the flag table", () => {
  const readme = readFileSync(join(import.meta.dirname, "..", "..", "README.md"), "utf8")

  it("every flag has a description of its own, a parseable default and one name", () => {
    const names = new Set<string>()
    for (const flag of proxyFlags) {
      expect(flag.description.length, flag.name).toBeGreaterThan(20)
      for (const name of [flag.name, ...(flag.aliases ?? [])]) {
        expect(names.has(name), name).toBe(false)
        names.add(name)
      }
      if (flag.default !== undefined) {
        expect(Either.isRight(flag.parse(`--${flag.name}`, flag.default)), flag.name).toBe(true)
      }
      if (flag.choices !== undefined) {
        for (const choice of flag.choices) {
          expect(Either.isRight(flag.parse(`--${flag.name}`, choice)), choice).toBe(true)
        }
      }
    }
  })

  it("every etcd flag is either the proxy's or a member's; ours are etcd's where etcd has them", () => {
    const proxyNames = new Set(proxyFlags.flatMap((flag) => [flag.name, ...(flag.aliases ?? [])]))
    const builtins = new Set(["version"])
    for (const flag of etcdFlags) {
      if (flag.use === "proxy") {
        expect(proxyNames.has(flag.name) || builtins.has(flag.name), flag.name).toBe(true)
      } else {
        expect(proxyNames.has(flag.name), flag.name).toBe(false)
        expect(flag.member, flag.name).toBeTruthy()
      }
    }
    const etcdNames = new Set(etcdFlags.map((flag) => flag.name))
    for (const flag of proxyFlags) {
      expect(etcdNames.has(flag.name), flag.name).toBe(flag.origin === "etcd")
    }
  })

  it("the README lists every etcd flag with what it does here, and the counts", () => {
    const used = etcdFlags.filter((flag) => flag.use === "proxy")
    const ignored = etcdFlags.filter((flag) => flag.use === "member")
    expect(readme.replace(/\s+/g, " ")).toContain(
      `${etcdFlags.length} flags: ${used.length} work here, ${ignored.length} are accepted and ignored`,
    )
    const section = readme.slice(readme.indexOf("## Every etcd flag"))
    for (const flag of etcdFlags) {
      const row = new RegExp(`^\\| \`--${flag.name}\` +\\| ([^|]+)\\| (.+) \\|$`, "m").exec(section)
      expect(row, flag.name).not.toBeNull()
      expect(row![1]!.trim(), flag.name).toBe(flag.versions)
      expect(row![2]!.startsWith(flag.use === "proxy" ? "**used**" : "ignored"), flag.name).toBe(
        true,
      )
    }
  })

  it("the README's flag table has every flag of the proxy with its default", () => {
    const table = readme.slice(readme.indexOf("## Running it"), readme.indexOf("## Finding"))
    for (const flag of proxyFlags) {
      const row = table.split("\n").find((line) => line.startsWith(`| \`--${flag.name}\``))
      expect(row, flag.name).toBeDefined()
      // The flag table is the source: the README says what --help says.
      expect(row!.replace(/\s+/g, " "), flag.name).toContain(flag.description.replace(/\|/g, "\\|"))
    }
    expect(proxyFlag.answerTimeout.default).toBe("5000")
  })
})

describe("promote's flags", () => {
  const promoteLine = (argv: ReadonlyArray<string>, env: Env = {}) =>
    readCommandLine(promoteCommand, argv, env)

  it("single-dash flags and ETCD_* for the flags etcd has", () => {
    const line = Either.getOrThrow(
      promoteLine(
        ["-endpoints", "http://127.0.0.1:2379/", "-peer-urls=http://127.0.0.1:2380", "-exec"],
        { ETCD_NAME: "infra1", ETCD_DATA_DIR: "/var/lib/p", ETCD_INITIAL_CLUSTER_TOKEN: "x" },
      ),
    )
    const options = Either.getOrThrow(promoteOptions(line.settings))
    expect(options).toEqual({
      endpoints: ["http://127.0.0.1:2379"],
      name: "infra1",
      peerUrls: ["http://127.0.0.1:2380"],
      dataDir: "/var/lib/p",
      listenClientUrls: ["http://localhost:2379"],
      advertiseClientUrls: undefined,
      exec: true,
      etcdBin: undefined,
    })
  })

  it("missing options are named in one line; member flags are unknown here", () => {
    const missing = promoteLine(["-endpoints", "http://127.0.0.1:2379"])
    expect(Either.isLeft(missing) && missing.left.message).toBe(
      "promote needs --name (or ETCD_NAME), --peer-urls and --data-dir (or ETCD_DATA_DIR) (see etcd-proxy promote --help)",
    )
    const member = promoteLine(["--snapshot-count", "5"])
    expect(Either.isLeft(member) && member.left.message).toContain("unknown flag --snapshot-count")
    const bad = Either.flatMap(
      promoteLine([
        "--endpoints",
        "x",
        "--peer-urls",
        "http://127.0.0.1:1",
        "--name",
        "a",
        "--data-dir",
        "d",
      ]),
      (line) => promoteOptions(line.settings),
    )
    expect(Either.isLeft(bad) && bad.left.message).toBe(
      'invalid value "x" for --endpoints: not a URL',
    )
  })
})
