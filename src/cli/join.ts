/** `etcd-proxy join` (SPEC §10): an etcd member through discovery, or a proxy when the cluster is full. */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { buildProxyConfig, proxyFlag } from "../domain/Config.js"
import { UsageError } from "../domain/Errors.js"
import { readDefaulted, readFlag, type Setting, type Settings } from "../domain/Flag.js"
import { JoinFailed } from "../domain/Lifecycle.js"
import { LoggingLive } from "../layers/Logging.js"
import { DiscoveryHttp } from "../services/cluster/DiscoveryHttp.js"
import { checkToken, tokenUrl } from "../services/cluster/DiscoveryUrl.js"
import { locateEtcd, memberEnv, startEtcd } from "../services/lifecycle/EtcdProcess.js"
import { etcdBin, joinDiscovery, proxyCommand } from "./commands.js"
import { runProxy } from "./proxyCommand.js"

/**
 * etcd's environment: ours, without what would contradict the command line we give it
 * (`--discovery-fallback=exit`) or turn it into etcd's own proxy (`ETCD_PROXY*`).
 */
const etcdEnvironment = (env: Readonly<Record<string, string | undefined>>) =>
  memberEnv(
    env,
    {},
    (variable) =>
      variable !== "ETCD_DISCOVERY_FALLBACK" &&
      variable !== "ETCD_PROXY_FALLBACK" &&
      variable !== "ETCD_PROXY" &&
      !variable.startsWith("ETCD_PROXY_"),
  )

/** The fallback proxy's settings: join's, less its own, as a read-write proxy. */
const proxySettings = (settings: Settings): Settings => {
  const proxy = new Map<string, Setting>([["proxy", { value: "on", label: "join" }]])
  for (const [name, setting] of settings) {
    if (name !== "discovery-fallback" && name !== "etcd-bin") proxy.set(name, setting)
  }
  return proxy
}

const say = (line: string) => Console.error(`join: ${line}`)

const fullMessage = /cluster is full/

/** join with its settings and the arguments for etcd. */
export const runJoin = (
  settings: Settings,
  forEtcd: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>,
) =>
  Effect.gen(function* () {
    const url = yield* readFlag(settings, joinDiscovery)
    if (url === undefined) {
      return yield* new UsageError({
        message:
          "join needs --discovery URL (or ETCD_DISCOVERY): the token the members bootstrap from",
      })
    }
    // The fallback proxy's flags are checked before anything starts: bad input exits 2 at once.
    const { config } = yield* buildProxyConfig(proxySettings(settings))
    yield* joinAs(settings, forEtcd, env, url).pipe(
      Effect.provide(LoggingLive(config.logFormat, config.logLevel, config.logOutputs)),
    )
  })

const joinAs = (
  settings: Settings,
  forEtcd: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>,
  url: URL,
) =>
  Effect.gen(function* () {
    const fallback = yield* readDefaulted(settings, proxyFlag.discoveryFallback)
    const proxy = yield* readFlag(settings, proxyFlag.discoveryProxy)
    const name = yield* readDefaulted(settings, proxyFlag.name)
    const dataDir = (yield* readFlag(settings, proxyFlag.dataDir)) ?? `${name}.etcd`
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const exists = (file: string) => fs.exists(file).pipe(Effect.orElseSucceed(() => false))
    const memberDir = path.join(dataDir, "member")
    const proxyDir = path.join(dataDir, "proxy")

    const becomeProxy = (reason: string) =>
      Effect.gen(function* () {
        if (fallback === "exit") {
          return yield* new JoinFailed({
            message: `${reason}; --discovery-fallback=exit, so this machine does not become a proxy`,
          })
        }
        yield* say(`${reason}; running as a read-write proxy instead (state in ${proxyDir})`)
        return yield* runProxy({
          spec: proxyCommand,
          settings: proxySettings(settings),
          builtin: undefined,
          ignored: [],
          forEtcd: [],
          warnings: [],
        })
      })

    const hasMember = yield* exists(memberDir)
    const hasProxy = yield* exists(path.join(proxyDir, "cluster"))
    if (hasMember && hasProxy) {
      return yield* new JoinFailed({
        message: `${dataDir} holds both member/ and proxy/ (etcd's own fallback leaves it so): remove ${memberDir} if this machine was a proxy, or ${proxyDir} if it was a member`,
      })
    }
    if (hasProxy) {
      return yield* becomeProxy(`this machine fell back to a proxy before (${proxyDir} exists)`)
    }

    if (!hasMember) {
      const token = yield* checkToken(url).pipe(Effect.provide(DiscoveryHttp.layer(proxy)))
      if (token.registered >= token.size) {
        return yield* becomeProxy(
          `discovery cluster ${tokenUrl(url)} is full (${token.registered} registered, size ${token.size})`,
        )
      }
      yield* say(
        `discovery cluster ${tokenUrl(url)} has room (${token.registered} of ${token.size} registered); starting etcd`,
      )
    }

    const bin = yield* locateEtcd(Option.fromNullable(yield* readFlag(settings, etcdBin)))
    const etcdEnv = etcdEnvironment(env)
    const etcdArgs = [...forEtcd, "--discovery-fallback=exit"]
    const exit = yield* Effect.scoped(
      Effect.gen(function* () {
        const etcd = yield* startEtcd(bin, etcdArgs, etcdEnv.env, { captureStderr: true })
        yield* say(`started ${bin} (pid ${etcd.pid})`)
        return yield* etcd.exited
      }),
    )
    if (exit.code === 0) return
    if (!hasMember && fullMessage.test(exit.stderrTail)) {
      // etcd leaves an empty member/ behind; the proxy must not share the data dir with it.
      yield* fs.remove(memberDir, { recursive: true }).pipe(Effect.ignore)
      return yield* becomeProxy(
        `etcd found the discovery cluster ${tokenUrl(url)} full when it tried to register`,
      )
    }
    return yield* new JoinFailed({
      message: `etcd exited with ${exit.code ?? exit.signal}`,
      exitCode: exit.code ?? 1,
    })
  })
