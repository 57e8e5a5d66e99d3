/** `etcd-proxy promote` (SPEC §9): the guide's four steps from proxy to member, each idempotent. */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { parseUrlList } from "../domain/Config.js"
import { UsageError } from "../domain/Errors.js"
import {
  hex16,
  memberAddOutput,
  memberEnvironment,
  memberWithPeerUrls,
  PromoteFailed,
  shellWord,
  type ClusterMember,
  type ClusterView,
} from "../domain/Lifecycle.js"
import { lockHolder } from "../services/DataDir.js"
import { locateEtcd, memberEnv, startEtcd } from "../services/lifecycle/EtcdProcess.js"
import { MemberAdmin, type MembershipError } from "../services/lifecycle/MemberAdmin.js"
import { version } from "./version.js"

const endpoints = Options.text("endpoints").pipe(
  Options.withPseudoName("URL[,URL]"),
  Options.withDescription("client URLs of the cluster's members, comma separated"),
)
const name = Options.text("name").pipe(
  Options.withPseudoName("NAME"),
  Options.withDescription("the new member's name"),
)
const peerUrls = Options.text("peer-urls").pipe(
  Options.withPseudoName("URL[,URL]"),
  Options.withDescription("the new member's peer URLs, comma separated (this machine)"),
)
const dataDir = Options.text("data-dir").pipe(
  Options.withPseudoName("DIR"),
  Options.withFallbackConfig(Config.string("ETCD_DATA_DIR")),
  Options.withDescription(
    "the proxy's data dir; the member keeps its data here (env ETCD_DATA_DIR)",
  ),
)
const listenClientUrls = Options.text("listen-client-urls").pipe(
  Options.withPseudoName("URL[,URL]"),
  Options.withDefault("http://localhost:2379"),
  Options.withDescription("where the member serves clients: the proxy's listen URLs"),
)
const advertiseClientUrls = Options.text("advertise-client-urls").pipe(
  Options.withPseudoName("URL[,URL]"),
  Options.optional,
  Options.withDescription(
    "client URLs the member advertises (default: --listen-client-urls); never a URL of a proxy",
  ),
)
const exec = Options.boolean("exec").pipe(
  Options.withDescription("start the new member (etcd from PATH or --etcd-bin) after the steps"),
)
const etcdBin = Options.text("etcd-bin").pipe(
  Options.withPseudoName("PATH"),
  Options.optional,
  Options.withDescription("the etcd binary for --exec"),
)

export const promoteUsage =
  "etcd-proxy promote --endpoints URL[,URL] --name NAME --peer-urls URL[,URL] --data-dir DIR [--listen-client-urls URL] [--advertise-client-urls URL] [--exec] [--etcd-bin PATH]"

const urls = (flag: string, value: string) =>
  Either.match(parseUrlList(flag, value), {
    onLeft: (error) => Effect.fail(error),
    onRight: (list) => Effect.succeed(list.map((url) => url.href.replace(/\/$/, ""))),
  })

const say = (line: string) => Console.log(`promote: ${line}`)

const failed = (message: string) => new PromoteFailed({ message })

export interface PromoteOptions {
  readonly endpoints: string
  readonly name: string
  readonly peerUrls: string
  readonly dataDir: string
  readonly listenClientUrls: string
  readonly advertiseClientUrls: Option.Option<string>
  readonly exec: boolean
  readonly etcdBin: Option.Option<string>
}

/** The four steps; each says what it did, and a failure says what is left to do. */
export const promote = (options: PromoteOptions) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const admin = yield* MemberAdmin
    const cluster = yield* urls("endpoints", options.endpoints)
    const peers = yield* urls("peer-urls", options.peerUrls)
    const listen = yield* urls("listen-client-urls", options.listenClientUrls)
    const advertise = Option.isSome(options.advertiseClientUrls)
      ? yield* urls("advertise-client-urls", options.advertiseClientUrls.value)
      : listen
    if (options.name.trim() === "" || options.name.includes("=") || options.name.includes(",")) {
      return yield* new UsageError({
        message: `invalid value ${JSON.stringify(options.name)} for --name: a member name must be non-empty, without "=" or ","`,
      })
    }
    const dir = options.dataDir
    const proxyDir = path.join(dir, "proxy")
    const bin = options.exec ? yield* locateEtcd(options.etcdBin) : undefined

    // 1. A running proxy still owns the data dir: stop it first; the cluster is not touched.
    const holder = yield* lockHolder(dir)
    if (Option.isSome(holder)) {
      return yield* failed(
        `a proxy (pid ${holder.value}) still holds ${path.join(proxyDir, "lock")}: stop it first ("kill ${holder.value}", or "systemctl stop" its unit), then run promote again; nothing was changed`,
      )
    }
    yield* say(`1/4 no proxy holds ${dir}`)

    // 2. Add the member, unless an earlier run already did.
    const clusterError = (error: MembershipError) =>
      failed(
        error.unreachable
          ? `cannot reach the cluster: ${error.message}; nothing was changed`
          : `the cluster refused: ${error.message}${/unhealthy|not enough started|too many/i.test(error.reason) ? " (etcd refuses membership changes while a member is down or not yet started, and for about 5 s after it starts; try again shortly)" : ""}; nothing was changed, run promote again`,
      )
    const before = yield* admin.list(cluster).pipe(Effect.mapError(clusterError))
    const existing = memberWithPeerUrls(before.value, peers)
    let added: { readonly member: ClusterMember; readonly view: ClusterView }
    if (existing !== undefined) {
      if (existing.name !== "" && existing.name !== options.name) {
        return yield* failed(
          `peer URL ${existing.peerURLs.join(",")} already belongs to member ${existing.name} (${existing.id.toString(16)}): choose other --peer-urls, or remove that member first; nothing was changed`,
        )
      }
      added = { member: existing, view: before.value }
      yield* say(
        `2/4 member ${existing.id.toString(16)} with peer URLs ${existing.peerURLs.join(",")} is already in cluster ${before.value.clusterId.toString(16)} (${existing.name === "" ? "added earlier, not started yet" : "started"}); not adding it again`,
      )
      yield* Console.log(
        memberAddOutput(before.value, existing.id, options.name, peers).replace(
          `Member ${hex16(existing.id)} added to cluster`,
          `Member ${hex16(existing.id)} already in cluster`,
        ),
      )
    } else {
      const result = yield* admin.add([before.endpoint], peers).pipe(Effect.mapError(clusterError))
      added = { member: result.value.added, view: result.value.view }
      yield* say(`2/4 added the member through ${result.endpoint}`)
      yield* Console.log(memberAddOutput(added.view, added.member.id, options.name, peers))
    }
    const env = memberEnvironment(added.view, added.member.id, options.name)

    // 3. The proxy's state goes; the rest of the data dir stays.
    if (yield* fs.exists(proxyDir).pipe(Effect.orElseSucceed(() => false))) {
      yield* fs
        .remove(proxyDir, { recursive: true })
        .pipe(
          Effect.mapError((error) =>
            failed(
              `the member was added, but ${proxyDir} could not be removed (${error.message}): remove it yourself, then start etcd as below`,
            ),
          ),
        )
      yield* say(`3/4 removed ${proxyDir}`)
    } else {
      yield* say(`3/4 ${proxyDir} does not exist; nothing to remove`)
    }

    // 4. The command that starts the member, and with --exec, the member itself.
    const args = [
      "--listen-client-urls",
      listen.join(","),
      "--advertise-client-urls",
      advertise.join(","),
      "--listen-peer-urls",
      peers.join(","),
      "--initial-advertise-peer-urls",
      peers.join(","),
      "--data-dir",
      dir,
    ]
    const exports = Object.entries(env).map(([key, value]) => `export ${key}=${shellWord(value)}`)
    yield* say("4/4 start the new member with:")
    yield* Console.log(
      [...exports, ["etcd", ...args].map(shellWord).join(" ")].map((l) => `  ${l}`).join("\n"),
    )
    if (bin === undefined) return

    const child = memberEnv(process.env, { ...env })
    if (child.dropped.length > 0) {
      yield* say(`not passing ${child.dropped.join(", ")} to etcd (they configured the proxy)`)
    }
    const etcd = yield* startEtcd(bin, args, child.env)
    yield* say(`started ${bin} (pid ${etcd.pid}); it runs until stopped`)
    const exit = yield* etcd.exited
    if (exit.code !== 0) {
      return yield* failed(
        `etcd exited with ${exit.code ?? exit.signal}; the member is added and ${proxyDir} is gone: fix the cause and start etcd with the command above`,
      )
    }
  }).pipe(Effect.scoped)

const command = Command.make(
  "promote",
  { endpoints, name, peerUrls, dataDir, listenClientUrls, advertiseClientUrls, exec, etcdBin },
  (options) => promote(options).pipe(Effect.provide(MemberAdmin.Default)),
).pipe(
  Command.withDescription(
    "Turn this proxy's machine into an etcd member, as etcd's proxy guide describes: add the member to the cluster, remove <data-dir>/proxy, then start etcd (--exec) or print how to.",
  ),
)

/** `argv` after the word `promote`. */
export const runPromote = (argv: ReadonlyArray<string>) =>
  Command.run(command, {
    name: "etcd-proxy promote",
    version,
    executable: "etcd-proxy",
  })(["node", "etcd-proxy", ...argv])
