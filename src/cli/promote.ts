/** `etcd-proxy promote` (SPEC §9): the guide's four steps from proxy to member, each idempotent. */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { UsageError } from "../domain/Errors.js"
import { readDefaulted, readFlag, type Flag, type Settings } from "../domain/Flag.js"
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
import { promoteFlag } from "./commands.js"

export interface PromoteOptions {
  readonly endpoints: ReadonlyArray<string>
  readonly name: string
  readonly peerUrls: ReadonlyArray<string>
  readonly dataDir: string
  readonly listenClientUrls: ReadonlyArray<string>
  readonly advertiseClientUrls: ReadonlyArray<string> | undefined
  readonly exec: boolean
  readonly etcdBin: string | undefined
}

/** The settings, parsed; every message names the flag or variable the value came from. */
export const promoteOptions = (settings: Settings): Either.Either<PromoteOptions, UsageError> =>
  Either.gen(function* () {
    const f = promoteFlag
    const required = <A>(flag: Flag<A>) =>
      Either.flatMap(readFlag(settings, flag), (value) =>
        value === undefined
          ? Either.left(new UsageError({ message: `promote needs --${flag.name}` }))
          : Either.right(value),
      )
    return {
      endpoints: yield* required(f.endpoints),
      name: yield* required(f.name),
      peerUrls: yield* required(f.peerUrls),
      dataDir: yield* required(f.dataDir),
      listenClientUrls: yield* readDefaulted(settings, f.listenClientUrls),
      advertiseClientUrls: yield* readFlag(settings, f.advertiseClientUrls),
      exec: yield* readDefaulted(settings, f.exec),
      etcdBin: yield* readFlag(settings, f.etcdBin),
    }
  })

const say = (line: string) => Console.log(`promote: ${line}`)

const failed = (message: string) => new PromoteFailed({ message })

/** The four steps; each says what it did, and a failure says what is left to do. */
export const promote = (options: PromoteOptions) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const admin = yield* MemberAdmin
    const cluster = options.endpoints
    const peers = options.peerUrls
    const listen = options.listenClientUrls
    const advertise = options.advertiseClientUrls ?? listen
    const dir = options.dataDir
    const proxyDir = path.join(dir, "proxy")
    const bin = options.exec ? yield* locateEtcd(Option.fromNullable(options.etcdBin)) : undefined

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

/** `promote` with its settings: parsed, then the four steps. */
export const runPromote = (settings: Settings) =>
  Effect.flatMap(promoteOptions(settings), (options) =>
    promote(options).pipe(Effect.provide(MemberAdmin.Default)),
  )
