/** `etcd-proxy join` (SPEC §10): an etcd member through discovery, or a proxy when the cluster is full. */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { parseChoice } from "../domain/Config.js"
import { UsageError } from "../domain/Errors.js"
import { JoinFailed } from "../domain/Lifecycle.js"
import { DiscoveryHttp } from "../services/cluster/DiscoveryHttp.js"
import { checkToken, tokenUrl } from "../services/cluster/DiscoveryUrl.js"
import { locateEtcd, memberEnv, startEtcd } from "../services/lifecycle/EtcdProcess.js"
import { envName } from "./flags.js"
import { runProxy } from "./proxyCommand.js"

export const joinUsage =
  "etcd-proxy join --discovery URL [--discovery-fallback proxy|exit] [--etcd-bin PATH] [--proxy-* flags] [etcd member flags...]"

const joinHelp = `Usage: ${joinUsage}

Starts etcd as a member that bootstraps through the discovery URL. When the discovery cluster is
already full (checked first, and again if etcd exits saying so), runs a read-write etcd-proxy on the
same --listen-client-urls instead, with its state in <data-dir>/proxy; --discovery-fallback exit
exits 1 instead. A data dir holding member/ restarts that member; one holding proxy/ that proxy.

Flags join reads itself (also from ETCD_*): --discovery, --discovery-fallback (--proxy-fallback),
--discovery-proxy, --name, --data-dir, --listen-client-urls, --etcd-bin (default: etcd on PATH),
and the proxy's --proxy-* and --log-format. Every other argument goes to etcd unchanged; etcd also
gets --discovery-fallback=exit, so that join decides what a full cluster means.`

/** Who a flag `join` knows is for: etcd, the fallback proxy, or both. */
interface JoinFlag {
  readonly name: string
  readonly aliases?: ReadonlyArray<string>
  readonly boolean?: true
  readonly etcd: boolean
  readonly proxy: boolean
}

const joinFlags: ReadonlyArray<JoinFlag> = [
  { name: "discovery", etcd: true, proxy: true },
  { name: "discovery-fallback", aliases: ["proxy-fallback"], etcd: false, proxy: false },
  { name: "discovery-proxy", etcd: true, proxy: true },
  { name: "name", etcd: true, proxy: true },
  { name: "data-dir", etcd: true, proxy: true },
  { name: "listen-client-urls", etcd: true, proxy: true },
  { name: "etcd-bin", etcd: false, proxy: false },
  ...[
    "proxy-failure-wait",
    "proxy-refresh-interval",
    "proxy-shuffle-interval",
    "proxy-dial-timeout",
    "proxy-write-timeout",
    "proxy-read-timeout",
    "proxy-balance",
    "log-format",
  ].map((name) => ({ name, etcd: false, proxy: true })),
  ...[
    "cert-file",
    "key-file",
    "trusted-ca-file",
    "peer-cert-file",
    "peer-key-file",
    "peer-trusted-ca-file",
    "log-level",
  ].map((name) => ({ name, etcd: true, proxy: true })),
  { name: "client-cert-auth", boolean: true, etcd: true, proxy: true },
]

export interface JoinArgs {
  readonly help: boolean
  /** Values of the flags `join` knows, from the command line or else `ETCD_*`. */
  readonly values: ReadonlyMap<string, string>
  /** What etcd gets: every argument except join's own, unchanged and in order. */
  readonly etcdArgs: ReadonlyArray<string>
}

/**
 * Reads etcd's flag syntax (`-flag value`, `--flag value`, `--flag=value`) for the flags `join`
 * knows; every other argument is left for etcd as it is, including the value after an unknown flag.
 */
export const readJoinArgv = (
  argv: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>,
): Either.Either<JoinArgs, UsageError> => {
  const byName = new Map<string, JoinFlag>()
  for (const flag of joinFlags) {
    byName.set(flag.name, flag)
    for (const alias of flag.aliases ?? []) byName.set(alias, flag)
  }
  const values = new Map<string, string>()
  const etcdArgs: Array<string> = []
  let help = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (!arg.startsWith("-") || arg === "-" || arg === "--") {
      etcdArgs.push(arg)
      continue
    }
    const body = arg.replace(/^--?/, "")
    const eq = body.indexOf("=")
    const name = eq === -1 ? body : body.slice(0, eq)
    if (name === "help" || name === "h") {
      help = true
      continue
    }
    const flag = byName.get(name)
    if (flag === undefined) {
      etcdArgs.push(arg)
      continue
    }
    const tokens = [arg]
    let value: string
    if (eq !== -1) value = body.slice(eq + 1)
    else if (flag.boolean === true) value = "true"
    else if (i + 1 < argv.length) {
      value = argv[++i]!
      tokens.push(value)
    } else {
      return Either.left(new UsageError({ message: `flag --${flag.name} needs a value` }))
    }
    values.set(flag.name, value)
    if (flag.etcd) etcdArgs.push(...tokens)
  }
  for (const flag of joinFlags) {
    if (values.has(flag.name)) continue
    for (const variable of [flag.name, ...(flag.aliases ?? [])].map(envName)) {
      const value = env[variable]
      if (value !== undefined && value !== "") {
        values.set(flag.name, value)
        break
      }
    }
  }
  return Either.right({ help, values, etcdArgs })
}

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

/** The fallback proxy's command line: its share of join's flags. */
const proxyArgv = (values: ReadonlyMap<string, string>): ReadonlyArray<string> => {
  const argv = ["--proxy", "on"]
  for (const flag of joinFlags) {
    const value = values.get(flag.name)
    if (!flag.proxy || value === undefined) continue
    if (flag.name === "log-level" && !["debug", "info", "warn", "error"].includes(value)) continue
    argv.push(`--${flag.name}=${value}`)
  }
  return argv
}

const say = (line: string) => Console.error(`join: ${line}`)

const fullMessage = /cluster is full/

export const runJoin = (
  argv: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>,
) =>
  Effect.gen(function* () {
    const args = yield* readJoinArgv(argv, env)
    if (args.help) return yield* Console.log(joinHelp)
    const { values } = args
    const discovery = values.get("discovery")
    if (discovery === undefined || !URL.canParse(discovery)) {
      return yield* new UsageError({
        message:
          discovery === undefined
            ? "join needs --discovery URL (or ETCD_DISCOVERY): the token the members bootstrap from"
            : `invalid value ${JSON.stringify(discovery)} for --discovery: not a URL`,
      })
    }
    const url = new URL(discovery)
    const fallback = yield* parseChoice(["proxy", "exit"] as const)(
      "discovery-fallback",
      values.get("discovery-fallback") ?? "proxy",
    )
    const proxy = values.get("discovery-proxy")
    if (proxy !== undefined && !URL.canParse(proxy)) {
      return yield* new UsageError({
        message: `invalid value ${JSON.stringify(proxy)} for --discovery-proxy: not a URL`,
      })
    }
    const name = values.get("name") ?? "default"
    const dataDir = values.get("data-dir") ?? `${name}.etcd`
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
        return yield* runProxy(proxyArgv(values), {})
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
      const token = yield* checkToken(url).pipe(
        Effect.provide(DiscoveryHttp.layer(proxy === undefined ? undefined : new URL(proxy))),
      )
      if (token.registered >= token.size) {
        return yield* becomeProxy(
          `discovery cluster ${tokenUrl(url)} is full (${token.registered} registered, size ${token.size})`,
        )
      }
      yield* say(
        `discovery cluster ${tokenUrl(url)} has room (${token.registered} of ${token.size} registered); starting etcd`,
      )
    }

    const bin = yield* locateEtcd(Option.fromNullable(values.get("etcd-bin")))
    const etcdEnv = etcdEnvironment(env)
    const etcdArgs = [...args.etcdArgs, "--discovery-fallback=exit"]
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
