/**
 * The three commands' flag tables and descriptions: what the pre-pass, the @effect/cli tree and
 * the command implementations share. Light on purpose: loading it loads no command.
 */
import * as Either from "effect/Either"
import { parseBool, parseText, parseUrlList, proxyFlag, proxyFlags } from "../domain/Config.js"
import { UsageError } from "../domain/Errors.js"
import type { Flag } from "../domain/Flag.js"
import type { CommandSpec } from "./commandLine.js"

export const proxyCommand: CommandSpec = {
  path: [],
  flags: proxyFlags,
  otherEtcdFlags: "ignore",
  warnUnknownEnv: true,
}

export const proxyDescription =
  "A transparent proxy for etcd clusters: the v2 keys API, the v3 JSON gateway and v3 gRPC, read-write or read-only. Flags are etcd's: --flag value, --flag=value and -flag value all work, and each flag can come from its ETCD_* variable instead. Every other flag etcd 3.4 and 3.5 accept (member settings such as --initial-cluster-token or --snapshot-count) is accepted, named in one warning at start-up, and otherwise ignored."

/** URLs as etcd prints them: without the trailing slash `URL` adds. */
const parseUrls = (label: string, value: string) =>
  Either.map(parseUrlList(label, value), (list) => list.map((url) => url.href.replace(/\/$/, "")))

const parseMemberName = (label: string, value: string) =>
  value.trim() === "" || value.includes("=") || value.includes(",")
    ? Either.left(
        new UsageError({
          message: `invalid value ${JSON.stringify(value)} for ${label}: a member name must be non-empty, without "=" or ","`,
        }),
      )
    : Either.right(value.trim())

const flag = <A>(spec: Flag<A>): Flag<A> => spec

/** promote's flags; those etcd has (`--name`, `--data-dir`, ...) are read from `ETCD_*` too. */
/** `--etcd-bin`: the etcd that `join` runs, and `promote --exec`. */
export const etcdBin: Flag<string> = {
  name: "etcd-bin",
  kind: "value",
  placeholder: "PATH",
  defaultText: "etcd on PATH",
  env: false,
  origin: "ours",
  description: "the etcd binary to run",
  parse: parseText,
}

export const promoteFlag = {
  endpoints: flag({
    name: "endpoints",
    kind: "value",
    placeholder: "URL[,URL]",
    env: false,
    required: true,
    origin: "ours",
    description: "client URLs of the cluster's members, comma separated",
    parse: parseUrls,
  }),
  name: flag({
    name: "name",
    kind: "value",
    placeholder: "NAME",
    required: true,
    origin: "etcd",
    description: "the new member's name",
    parse: parseMemberName,
  }),
  peerUrls: flag({
    name: "peer-urls",
    kind: "value",
    placeholder: "URL[,URL]",
    env: false,
    required: true,
    origin: "ours",
    description: "the new member's peer URLs on this machine, comma separated",
    parse: parseUrls,
  }),
  dataDir: flag({
    name: "data-dir",
    kind: "value",
    placeholder: "DIR",
    required: true,
    origin: "etcd",
    description: "the proxy's data dir; the member keeps its data here, and DIR/proxy is removed",
    parse: parseText,
  }),
  listenClientUrls: {
    name: "listen-client-urls",
    kind: "value",
    placeholder: "URL[,URL]",
    default: proxyFlag.listenClientUrls.default,
    origin: "etcd",
    description: "where the member serves clients: the proxy's listen URLs",
    parse: parseUrls,
  } satisfies Flag<ReadonlyArray<string>> & { readonly default: string },
  advertiseClientUrls: flag({
    name: "advertise-client-urls",
    kind: "value",
    placeholder: "URL[,URL]",
    defaultText: "--listen-client-urls",
    origin: "etcd",
    description: "client URLs the member announces to the cluster; never a URL of a proxy",
    parse: parseUrls,
  }),
  exec: {
    name: "exec",
    kind: "boolean",
    default: "false",
    env: false,
    origin: "ours",
    description:
      "after the steps, start the new member (etcd from PATH, or --etcd-bin) and run until it stops",
    parse: parseBool,
  } satisfies Flag<boolean> & { readonly default: string },
  etcdBin: flag({ ...etcdBin, description: "the etcd binary --exec runs" }),
} as const

export const promoteCommand: CommandSpec = {
  path: ["promote"],
  flags: Object.values(promoteFlag),
  otherEtcdFlags: "unknown",
  warnUnknownEnv: false,
}

export const promoteDescription =
  "Turn this proxy's machine into an etcd member, as etcd's proxy guide describes: stop here while a proxy still holds the data dir, add the member to the cluster (printing what etcdctl member add prints), remove <data-dir>/proxy, then print the etcd command line that starts the member, or run it with --exec. Each step can be repeated safely."

export const joinDescription =
  "Start etcd as a member that bootstraps through the discovery URL. When the discovery cluster is already full (checked first, and again if etcd exits saying so), run a read-write etcd-proxy on the same --listen-client-urls instead, with its state in <data-dir>/proxy (--discovery-fallback exit: exit 1). A data dir holding member/ restarts that member; one holding proxy/ that proxy. Every argument join does not read itself goes to etcd unchanged (etcd also gets --discovery-fallback=exit, so that join decides what a full cluster means); join's own --name, --data-dir, --listen-client-urls, --discovery, --discovery-proxy, TLS flags and --log-level go to etcd too."

export const joinDiscovery: Flag<URL> = { ...proxyFlag.discovery, required: true }

/** The flags join reads; the fallback proxy gets all but `--discovery-fallback` and `--etcd-bin`. */
const joinFlags: ReadonlyArray<Flag> = [
  joinDiscovery,
  proxyFlag.discoveryFallback,
  proxyFlag.discoveryProxy,
  proxyFlag.name,
  proxyFlag.dataDir,
  proxyFlag.listenClientUrls,
  etcdBin,
  proxyFlag.failureWait,
  proxyFlag.refreshInterval,
  proxyFlag.shuffleInterval,
  proxyFlag.dialTimeout,
  proxyFlag.writeTimeout,
  proxyFlag.readTimeout,
  proxyFlag.answerTimeout,
  proxyFlag.balance,
  proxyFlag.logFormat,
  proxyFlag.certFile,
  proxyFlag.keyFile,
  proxyFlag.trustedCaFile,
  proxyFlag.clientCertAuth,
  proxyFlag.peerCertFile,
  proxyFlag.peerKeyFile,
  proxyFlag.peerTrustedCaFile,
  proxyFlag.logLevel,
]

/** join's flags that etcd reads as well: they stay on etcd's command line as given. */
const sharedWithEtcd = new Set([
  "discovery",
  "discovery-proxy",
  "name",
  "data-dir",
  "listen-client-urls",
  "cert-file",
  "key-file",
  "trusted-ca-file",
  "client-cert-auth",
  "peer-cert-file",
  "peer-key-file",
  "peer-trusted-ca-file",
  "log-level",
])

export const joinCommand: CommandSpec = {
  path: ["join"],
  flags: joinFlags,
  otherEtcdFlags: "pass",
  alsoForEtcd: sharedWithEtcd,
  warnUnknownEnv: false,
}
