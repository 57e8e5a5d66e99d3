/** The command line (SPEC §2): etcd's flag spellings, `ETCD_*`, YAML config files, validation. */
import * as FileSystem from "@effect/platform/FileSystem"
import { SystemError } from "@effect/platform/Error"
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type { ProxyConfigShape } from "../../src/domain/Config.js"
import {
  buildConfig,
  envName,
  mergeEnv,
  proxyFlags,
  readArgv,
  readConfigFile,
} from "../../src/cli/flags.js"
import { resolveProxyConfig } from "../../src/cli/proxyCommand.js"

const argv = (...args: Array<string>) => {
  const result = readArgv(proxyFlags, args)
  if (Either.isLeft(result)) throw new Error(`unexpected usage error: ${result.left.message}`)
  return result.right.values
}

const argvError = (...args: Array<string>): string => {
  const result = readArgv(proxyFlags, args)
  if (Either.isRight(result)) throw new Error(`expected a usage error for ${args.join(" ")}`)
  return result.left.message
}

const config = (values: Record<string, string>): ProxyConfigShape => {
  const result = buildConfig(new Map(Object.entries(values)))
  if (Either.isLeft(result)) throw new Error(`unexpected usage error: ${result.left.message}`)
  return result.right
}

const configError = (values: Record<string, string>): string => {
  const result = buildConfig(new Map(Object.entries(values)))
  if (Either.isRight(result))
    throw new Error(`expected a usage error for ${JSON.stringify(values)}`)
  return result.left.message
}

const cluster = { "initial-cluster": "m1=http://127.0.0.1:2380" }

describe("readArgv", () => {
  it("reads --flag value, --flag=value and -flag value", () => {
    expect(argv("--name", "a").get("name")).toBe("a")
    expect(argv("--name=a").get("name")).toBe("a")
    expect(argv("-name", "a").get("name")).toBe("a")
    expect(argv("-name=a").get("name")).toBe("a")
    expect(argv("--initial-cluster=m1=http://127.0.0.1:2380").get("initial-cluster")).toBe(
      "m1=http://127.0.0.1:2380",
    )
  })

  it("a boolean flag alone is true, and takes =false", () => {
    expect(argv("--client-cert-auth").get("client-cert-auth")).toBe("true")
    expect(argv("--client-cert-auth", "--name", "a").get("client-cert-auth")).toBe("true")
    expect(argv("--client-cert-auth=false").get("client-cert-auth")).toBe("false")
    expect(config({ ...cluster, "client-cert-auth": "true" }).tls.clientCertAuth).toBe(true)
    expect(config({ ...cluster, "client-cert-auth": "false" }).tls.clientCertAuth).toBe(false)
    expect(config(cluster).tls.clientCertAuth).toBe(false)
  })

  it("repeating a list flag appends; repeating another flag keeps the last value", () => {
    const values = argv(
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
    )
    expect(values.get("listen-client-urls")).toBe("http://127.0.0.1:2379,http://127.0.0.1:4001")
    expect(values.get("cors")).toBe("http://a,http://b")
    expect(values.get("name")).toBe("second")
    const built = config({ ...cluster, ...Object.fromEntries(values) })
    expect(built.listenUrls.map((u) => u.href)).toEqual([
      "http://127.0.0.1:2379/",
      "http://127.0.0.1:4001/",
    ])
    expect(built.cors).toEqual(["http://a", "http://b"])
  })

  it("an unknown flag is a usage error naming it", () => {
    expect(argvError("--proxy-bogus", "1")).toContain("unknown flag --proxy-bogus")
    expect(argvError("--proxy-bogus=1")).toContain("unknown flag --proxy-bogus")
  })

  it("a flag without its value is a usage error naming it", () => {
    expect(argvError("--name")).toContain("--name needs a value")
    expect(argvError("--name", "a", "--proxy-refresh-interval")).toContain(
      "--proxy-refresh-interval needs a value",
    )
  })

  it("a bare argument is a usage error", () => {
    expect(argvError("--name", "a", "stray")).toContain('"stray"')
  })

  it("--proxy-fallback is an alias of --discovery-fallback", () => {
    const values = argv("--proxy-fallback", "exit")
    expect(values.get("discovery-fallback")).toBe("exit")
    expect(config({ ...cluster, ...Object.fromEntries(values) }).discoveryFallback).toBe("exit")
  })

  it("--help and --version are recognised in either spelling", () => {
    const help = readArgv(proxyFlags, ["-h"])
    expect(Either.isRight(help) && help.right.help).toBe(true)
    const version = readArgv(proxyFlags, ["-version"])
    expect(Either.isRight(version) && version.right.version).toBe(true)
  })
})

describe("--proxy", () => {
  it("on and readonly; off is refused with a message naming on and readonly", () => {
    expect(config({ ...cluster, proxy: "on" }).mode).toBe("readwrite")
    expect(config({ ...cluster, proxy: "readonly" }).mode).toBe("readonly")
    expect(config(cluster).mode).toBe("readwrite")
    const off = configError({ ...cluster, proxy: "off" })
    expect(off).toContain("--proxy")
    expect(off).toContain('"on"')
    expect(off).toContain('"readonly"')
    expect(configError({ ...cluster, proxy: "maybe" })).toContain('"maybe" for --proxy')
  })
})

describe("mergeEnv", () => {
  it("falls back to ETCD_* variables", () => {
    expect(envName("proxy-refresh-interval")).toBe("ETCD_PROXY_REFRESH_INTERVAL")
    const merged = mergeEnv(proxyFlags, argv("--name", "a"), {
      ETCD_PROXY_REFRESH_INTERVAL: "10000",
      ETCD_INITIAL_CLUSTER: "m1=http://127.0.0.1:2380",
      PATH: "/usr/bin",
    })
    expect(Either.isRight(merged)).toBe(true)
    if (Either.isLeft(merged)) return
    expect(merged.right.warnings).toEqual([])
    const built = config(Object.fromEntries(merged.right.values))
    expect(Duration.toMillis(built.refreshInterval)).toBe(10_000)
    expect(built.name).toBe("a")
    expect(built.cluster._tag).toBe("InitialCluster")
  })

  it("a flag and its variable both set is a usage error naming both", () => {
    const merged = mergeEnv(proxyFlags, argv("--proxy-refresh-interval", "5000"), {
      ETCD_PROXY_REFRESH_INTERVAL: "10000",
    })
    expect(Either.isLeft(merged)).toBe(true)
    if (Either.isRight(merged)) return
    expect(merged.left._tag).toBe("UsageError")
    expect(merged.left.message).toContain("--proxy-refresh-interval")
    expect(merged.left.message).toContain("ETCD_PROXY_REFRESH_INTERVAL")
  })

  it("the alias's variable counts as the same setting", () => {
    const fromAlias = mergeEnv(proxyFlags, new Map(), { ETCD_PROXY_FALLBACK: "exit" })
    expect(Either.isRight(fromAlias) && fromAlias.right.values.get("discovery-fallback")).toBe(
      "exit",
    )
    const both = mergeEnv(proxyFlags, argv("--discovery-fallback", "proxy"), {
      ETCD_PROXY_FALLBACK: "exit",
    })
    expect(Either.isLeft(both) && both.left.message).toContain("ETCD_PROXY_FALLBACK")
  })

  it("an unknown ETCD_ variable is a warning, not an error", () => {
    const merged = mergeEnv(proxyFlags, new Map(), {
      ETCD_LISTEN_PEER_URLS: "http://127.0.0.1:2380",
      ETCD_NAME: "a",
      ETCDCTL_API: "3",
    })
    expect(Either.isRight(merged)).toBe(true)
    if (Either.isLeft(merged)) return
    expect(merged.right.warnings).toHaveLength(1)
    expect(merged.right.warnings[0]).toContain("ETCD_LISTEN_PEER_URLS")
    expect(merged.right.values.get("name")).toBe("a")
  })
})

describe("readConfigFile", () => {
  const read = (text: string) => {
    const result = readConfigFile(proxyFlags, "proxy.yaml", text)
    if (Either.isLeft(result)) throw new Error(`unexpected usage error: ${result.left.message}`)
    return result.right
  }

  it("reads flag names as keys, including an unquoted proxy: on", () => {
    const { values, warnings } = read(
      [
        "proxy: on",
        "name: edge",
        "proxy-refresh-interval: 10000",
        "initial-cluster: m1=http://127.0.0.1:2380",
        "client-cert-auth: false",
      ].join("\n"),
    )
    expect(warnings).toEqual([])
    const built = config(Object.fromEntries(values))
    expect(built.mode).toBe("readwrite")
    expect(built.name).toBe("edge")
    expect(Duration.toMillis(built.refreshInterval)).toBe(10_000)
    expect(built.tls.clientCertAuth).toBe(false)
  })

  it("proxy: true means on; proxy: readonly and proxy: off keep their meaning", () => {
    expect(config({ ...cluster, ...Object.fromEntries(read("proxy: true").values) }).mode).toBe(
      "readwrite",
    )
    expect(config({ ...cluster, ...Object.fromEntries(read("proxy: readonly").values) }).mode).toBe(
      "readonly",
    )
    expect(configError({ ...cluster, ...Object.fromEntries(read("proxy: off").values) })).toContain(
      "--proxy",
    )
  })

  it("lists may be YAML arrays or comma strings", () => {
    const { values } = read(
      [
        "listen-client-urls:",
        "  - http://127.0.0.1:2379",
        "  - http://127.0.0.1:4001",
        "cors: [http://a, http://b]",
        "initial-cluster: m1=http://127.0.0.1:2380,m2=http://127.0.0.2:2380",
      ].join("\n"),
    )
    const built = config(Object.fromEntries(values))
    expect(built.listenUrls.map((u) => u.port)).toEqual(["2379", "4001"])
    expect(built.cors).toEqual(["http://a", "http://b"])
    expect(built.cluster._tag === "InitialCluster" && built.cluster.members.length).toBe(2)
  })

  it("unknown keys are warnings; empty keys are unset; the alias is accepted", () => {
    const { values, warnings } = read(
      ["initial-cluster-state: new", "discovery:", "proxy-fallback: exit", "name: a"].join("\n"),
    )
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toContain('"initial-cluster-state"')
    expect(values.has("discovery")).toBe(false)
    expect(values.get("discovery-fallback")).toBe("exit")
  })

  it("an empty file is no settings; malformed YAML or a non-mapping is a usage error", () => {
    expect(read("").values.size).toBe(0)
    const bad = readConfigFile(proxyFlags, "proxy.yaml", "name: [unclosed")
    expect(Either.isLeft(bad) && bad.left.message).toContain("proxy.yaml")
    const list = readConfigFile(proxyFlags, "proxy.yaml", "- a\n- b\n")
    expect(Either.isLeft(list) && list.left.message).toContain("mapping")
    const nested = readConfigFile(proxyFlags, "proxy.yaml", "name:\n  a: b\n")
    expect(Either.isLeft(nested) && nested.left.message).toContain("name")
  })
})

describe("buildConfig", () => {
  it("etcd's defaults", () => {
    const built = config(cluster)
    expect(built.listenUrls.map((u) => u.href)).toEqual(["http://localhost:2379/"])
    expect(built.name).toBe("default")
    expect(built.dataDir).toBe("default.etcd")
    expect(Duration.toMillis(built.failureWait)).toBe(5_000)
    expect(Duration.toMillis(built.refreshInterval)).toBe(30_000)
    expect(Duration.toMillis(built.shuffleInterval)).toBe(30_000)
    expect(Duration.toMillis(built.dialTimeout)).toBe(1_000)
    expect(Duration.toMillis(built.writeTimeout)).toBe(5_000)
    expect(Duration.toMillis(built.readTimeout)).toBe(0)
    expect(built.balance).toBe("sticky")
    expect(built.maxRequestBytes).toBe(1_572_864)
    expect(built.discoveryFallback).toBe("proxy")
    expect(built.logLevel).toBe("info")
    expect(built.logFormat).toBe("text")
  })

  it("the data dir defaults to <name>.etcd", () => {
    expect(config({ ...cluster, name: "edge" }).dataDir).toBe("edge.etcd")
    expect(config({ ...cluster, name: "edge", "data-dir": "/var/lib/p" }).dataDir).toBe(
      "/var/lib/p",
    )
  })

  it("the shuffle interval defaults to the refresh interval", () => {
    const built = config({ ...cluster, "proxy-refresh-interval": "7000" })
    expect(Duration.toMillis(built.shuffleInterval)).toBe(7_000)
    const own = config({
      ...cluster,
      "proxy-refresh-interval": "7000",
      "proxy-shuffle-interval": "2000",
    })
    expect(Duration.toMillis(own.shuffleInterval)).toBe(2_000)
  })

  it("durations are milliseconds, with an optional unit", () => {
    const ms = (value: string) =>
      Duration.toMillis(config({ ...cluster, "proxy-failure-wait": value }).failureWait)
    expect(ms("5000")).toBe(5_000)
    expect(ms("5s")).toBe(5_000)
    expect(ms("250ms")).toBe(250)
    expect(ms("2m")).toBe(120_000)
    expect(ms("0")).toBe(0)
    for (const bad of ["abc", "5x", "-1", "1.5", "5 s"]) {
      const message = configError({ ...cluster, "proxy-failure-wait": bad })
      expect(message, bad).toContain("--proxy-failure-wait")
      expect(message, bad).toContain(JSON.stringify(bad))
    }
  })

  it("a zero refresh interval or dial timeout is refused", () => {
    expect(configError({ ...cluster, "proxy-refresh-interval": "0" })).toContain(
      "--proxy-refresh-interval",
    )
    expect(configError({ ...cluster, "proxy-dial-timeout": "0" })).toContain("--proxy-dial-timeout")
  })

  it("a bad listen URL names the flag and the value", () => {
    for (const [value, reason] of [
      ["http://127.0.0.1", "host:port"],
      ["http://127.0.0.1:2379/v2", "path"],
      ["unix://127.0.0.1:2379", "scheme"],
      ["ftp://127.0.0.1:2379", "scheme"],
      ["http://myhost:2379", "IP address or localhost"],
      ["not a url", "not a URL"],
      ["http://u:p@127.0.0.1:2379", "credentials"],
      ["http://127.0.0.1:2379?x=1", "query"],
    ] as const) {
      const message = configError({ ...cluster, "listen-client-urls": value })
      expect(message, value).toContain("--listen-client-urls")
      expect(message, value).toContain(JSON.stringify(value))
      expect(message, value).toContain(reason)
    }
  })

  it("listen URLs may be IPv4, IPv6, localhost and https", () => {
    const built = config({
      ...cluster,
      "listen-client-urls": "http://0.0.0.0:2379,https://[::1]:2379,http://localhost:4001",
    })
    expect(built.listenUrls.map((u) => `${u.protocol}${u.hostname}:${u.port}`)).toEqual([
      "http:0.0.0.0:2379",
      "https:[::1]:2379",
      "http:localhost:4001",
    ])
  })

  it("parses --initial-cluster into names and peer URLs", () => {
    const built = config({
      "initial-cluster":
        "m1=http://10.0.0.1:2380, m2=https://10.0.0.2:2380,m2=http://10.0.0.3:2380",
    })
    expect(built.cluster._tag).toBe("InitialCluster")
    if (built.cluster._tag !== "InitialCluster") return
    expect(built.cluster.members.map((m) => [m.name, m.peerUrl.href])).toEqual([
      ["m1", "http://10.0.0.1:2380/"],
      ["m2", "https://10.0.0.2:2380/"],
      ["m2", "http://10.0.0.3:2380/"],
    ])
    expect(configError({ "initial-cluster": "http://10.0.0.1:2380" })).toContain(
      "--initial-cluster",
    )
    expect(configError({ "initial-cluster": "m1=http://10.0.0.1" })).toContain('"http://10.0.0.1"')
  })

  it("discovery and SRV sources", () => {
    const url = config({ discovery: "https://discovery.etcd.io/abc" }).cluster
    expect(url._tag === "DiscoveryUrl" && url.url.pathname).toBe("/abc")
    const srv = config({ "discovery-srv": "example.com", "discovery-srv-name": "east" }).cluster
    expect(srv).toEqual({ _tag: "DiscoverySrv", domain: "example.com", serviceName: "east" })
    expect(config({}).cluster._tag).toBe("SavedOnly")
    expect(configError({ discovery: "ftp://x/abc" })).toContain("--discovery")
  })

  it("more than one cluster source is refused, naming them", () => {
    const two = configError({ ...cluster, discovery: "http://127.0.0.1:8087/abc" })
    expect(two).toContain("--initial-cluster")
    expect(two).toContain("--discovery")
    expect(two).toContain("choose one")
    const three = configError({
      ...cluster,
      discovery: "http://127.0.0.1:8087/abc",
      "discovery-srv": "example.com",
    })
    expect(three).toContain("--discovery-srv")
  })

  it("choices and numbers are validated with the flag's name", () => {
    expect(config({ ...cluster, "proxy-balance": "round-robin" }).balance).toBe("round-robin")
    expect(configError({ ...cluster, "proxy-balance": "random" })).toContain("--proxy-balance")
    expect(configError({ ...cluster, "log-level": "trace" })).toContain("--log-level")
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

describe("resolveProxyConfig with --config-file", () => {
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

  it.effect("the file replaces other flags and variables, with a warning naming them", () =>
    Effect.gen(function* () {
      const invocation = yield* resolveProxyConfig(
        ["--config-file", "/etc/proxy.yaml", "--name", "from-flag"],
        { ETCD_PROXY_REFRESH_INTERVAL: "1234" },
      ).pipe(Effect.provide(files({ "/etc/proxy.yaml": yaml })))
      expect(invocation._tag).toBe("Run")
      if (invocation._tag !== "Run") return
      expect(invocation.config.name).toBe("from-file")
      expect(Duration.toMillis(invocation.config.refreshInterval)).toBe(30_000)
      expect(invocation.warnings.join("\n")).toContain("--name")
      expect(invocation.warnings.join("\n")).toContain("--proxy-refresh-interval")
    }),
  )

  it.effect("ETCD_CONFIG_FILE names the file too", () =>
    Effect.gen(function* () {
      const invocation = yield* resolveProxyConfig([], {
        ETCD_CONFIG_FILE: "/etc/proxy.yaml",
      }).pipe(Effect.provide(files({ "/etc/proxy.yaml": yaml })))
      expect(invocation._tag === "Run" && invocation.config.name).toBe("from-file")
    }),
  )

  it.effect("an unreadable file is a usage error naming it", () =>
    Effect.gen(function* () {
      const error = yield* resolveProxyConfig(["--config-file=/nope.yaml"], {}).pipe(
        Effect.provide(files({})),
        Effect.flip,
      )
      expect(error._tag).toBe("UsageError")
      expect(error.message).toContain("/nope.yaml")
    }),
  )
})
