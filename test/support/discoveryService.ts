/** The real discovery service (Debian `etcd-discovery`) on loopback, and real etcd members joining through it. */
import { spawn, type ChildProcess } from "node:child_process"
import { accessSync, constants, existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import {
  etcdBinary,
  freePort,
  memberFlags,
  startCluster,
  stopProcess,
  waitHealthy,
} from "../../scripts/lib/cluster.mjs"

const serviceBinary = "/usr/bin/discovery.etcd.io"
const serviceConfig = "/etc/etcd-discovery/etcd-discovery.conf"

/** The discovery service binary and its config file, or a loud error that says how to install them. */
export const discoveryServiceBinary = (): string => {
  const bin = process.env["DISCOVERY_BIN"] ?? serviceBinary
  try {
    accessSync(bin, constants.X_OK)
  } catch {
    throw new Error(
      `discovery service not found (${bin}): install it with "apt-get install -y etcd-discovery", or set DISCOVERY_BIN`,
    )
  }
  if (!existsSync(serviceConfig)) {
    throw new Error(
      `${serviceConfig} is missing and ${bin} exits without it: reinstall "etcd-discovery"`,
    )
  }
  return bin
}

export interface DiscoveryService {
  /** The service's base URL, e.g. `http://127.0.0.1:PORT`. */
  readonly url: string
  /** The backing etcd's client URL (v2 enabled); tokens live under `/v2/keys/_etcd/registry/`. */
  readonly backing: string
  /** `GET /new?size=N`: a fresh token URL. */
  readonly newToken: (size: number) => Effect.Effect<string>
  /** Writes a key under a token straight into the backing etcd (for faults a member never makes). */
  readonly putRegistryKey: (token: string, key: string, value: string) => Effect.Effect<void>
  /** Starts another instance of the service on `port`, on the same backing etcd; stopped with the scope. */
  readonly startAnother: (port: number) => Effect.Effect<void, never, Scope.Scope>
  readonly output: () => string
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const launch = async (bin: string, port: number, backing: string) => {
  const url = `http://127.0.0.1:${port}`
  const child = spawn(bin, ["-a", `127.0.0.1:${port}`, "-e", backing, "-h", url], {
    stdio: ["ignore", "pipe", "pipe"],
  })
  let output = ""
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()))
  const deadline = Date.now() + 15_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break
    try {
      const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1_000) })
      if ((await response.text()) === "OK") return { child, url, output: () => output }
    } catch {
      // not listening yet
    }
    await sleep(50)
  }
  await stopProcess(child)
  throw new Error(`discovery service on ${url} did not become healthy:\n${output}`)
}

/** A backing etcd (one member, v2 API) and the discovery service on a free loopback port. */
export const startDiscoveryService = Effect.gen(function* () {
  const bin = discoveryServiceBinary()
  const backing = yield* Effect.acquireRelease(
    Effect.promise(() => startCluster({ size: 1 })),
    (cluster) => Effect.promise(() => cluster.stop()),
  )
  const backingUrl = backing.members[0]!.clientUrl
  const port = yield* Effect.promise(() => freePort())
  const service = yield* Effect.acquireRelease(
    Effect.promise(() => launch(bin, port, backingUrl)),
    (service) => Effect.promise(() => stopProcess(service.child)),
  )
  const newToken = (size: number) =>
    Effect.promise(async () => {
      const response = await fetch(`${service.url}/new?size=${size}`)
      const text = (await response.text()).trim()
      if (response.status !== 200 || !text.startsWith(service.url)) {
        throw new Error(`discovery service /new answered ${response.status}: ${text}`)
      }
      return text
    })
  const putRegistryKey = (token: string, key: string, value: string) =>
    Effect.promise(async () => {
      const id = new URL(token).pathname.replace(/^\//, "")
      const response = await fetch(`${backingUrl}/v2/keys/_etcd/registry/${id}/${key}`, {
        method: "PUT",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: `value=${encodeURIComponent(value)}`,
      })
      if (response.status >= 300) {
        throw new Error(`backing etcd PUT ${key} answered ${response.status}`)
      }
      await response.text()
    })
  const startAnother = (another: number) =>
    Effect.acquireRelease(
      Effect.promise(() => launch(bin, another, backingUrl)),
      (service) => Effect.promise(() => stopProcess(service.child)),
    ).pipe(Effect.asVoid)
  const result: DiscoveryService = {
    url: service.url,
    backing: backingUrl,
    newToken,
    putRegistryKey,
    startAnother,
    output: service.output,
  }
  return result
})

export interface DiscoveryMember {
  readonly name: string
  readonly clientUrl: string
  readonly peerUrl: string
  readonly dataDir: string
  readonly child: ChildProcess
  readonly logs: () => string
}

/** A real etcd member bootstrapping through `token` (it registers itself); stopped with the scope. */
export const startDiscoveryMember = (token: string, name: string) =>
  Effect.acquireRelease(
    Effect.promise(async (): Promise<DiscoveryMember> => {
      const clientUrl = `http://127.0.0.1:${await freePort()}`
      const peerUrl = `http://127.0.0.1:${await freePort()}`
      const dataDir = mkdtempSync(join(tmpdir(), `etcd-proxy-${name}-`))
      const child = spawn(
        etcdBinary(),
        [
          ...memberFlags({ name, dataDir, clientUrl, peerUrl, logLevel: "warn" }),
          "--discovery",
          token,
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      )
      let logs = ""
      child.stdout!.on("data", (chunk: Buffer) => (logs += chunk.toString()))
      child.stderr!.on("data", (chunk: Buffer) => (logs += chunk.toString()))
      return { name, clientUrl, peerUrl, dataDir, child, logs: () => logs }
    }),
    (member) =>
      Effect.promise(async () => {
        await stopProcess(member.child)
        rmSync(member.dataDir, { recursive: true, force: true })
      }),
  )

/** Resolves once the member serves; fails with its log when it does not within `timeoutMs`. */
export const memberHealthy = (member: DiscoveryMember, timeoutMs = 20_000) =>
  Effect.tryPromise({
    try: () => waitHealthy(member.clientUrl, timeoutMs),
    catch: (error) => new Error(`${String(error)}\n${member.logs().slice(-2_000)}`),
  })

/** The discovery service as a shared test layer: one per test file. */
export class DiscoveryServiceTag extends Context.Tag("test/DiscoveryService")<
  DiscoveryServiceTag,
  DiscoveryService
>() {
  static readonly layer = Layer.scoped(DiscoveryServiceTag, startDiscoveryService)
}
