/** `etcd-proxy promote` against a real cluster, following the proxy guide's example end to end (SPEC §9). */
import { spawn } from "node:child_process"
import { existsSync, readdirSync } from "node:fs"
import { join } from "node:path"
import { expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { etcdBinary, freePort, stopProcess, waitHealthy } from "../../scripts/lib/cluster.mjs"
import { acquireCluster } from "../support/cluster.js"
import { etcdctl } from "../support/etcdctl.js"
import { call } from "../support/http.js"
import { runCli, spawnCli, startProxy, tempDir } from "../support/proxy.js"
import { outputContains } from "../support/wait.js"

/** `etcdctl member list` rows as `name status` (unstarted members have no name). */
const memberList = (endpoint: string) =>
  etcdctl(["--endpoints", endpoint, "member", "list"]).pipe(
    Effect.map((result) => {
      expect(result.code).toBe(0)
      return result.stdout
        .trim()
        .split("\n")
        .map((line) => line.split(", "))
        .map(([, status, name]) => `${name} ${status}`)
        .sort()
    }),
  )

/** Member name to hex id, from `etcdctl member list`. */
const memberIds = (endpoint: string) =>
  etcdctl(["--endpoints", endpoint, "member", "list"]).pipe(
    Effect.map((result) =>
      Object.fromEntries(
        result.stdout
          .trim()
          .split("\n")
          .map((line) => line.split(", "))
          .map(([id, , name]) => [name, id]),
      ),
    ),
  )

/** The `export K=V` lines and the `etcd ...` line that promote printed (bare shell words). */
const printedCommand = (output: string) => {
  const env: Record<string, string> = {}
  for (const match of output.matchAll(/^ {2}export ([A-Z_]+)=(\S+)$/gm)) env[match[1]!] = match[2]!
  const line = /^ {2}etcd (.+)$/m.exec(output)
  expect(line).not.toBeNull()
  return { env, args: line![1]!.split(" ") }
}

it.scopedLive(
  "promote moves a proxy's machine into a 1-member cluster, refusing while the proxy runs; --exec starts the member itself",
  () =>
    Effect.gen(function* () {
      // etcd refuses member add for ~5 s after start unless told not to check.
      const cluster = yield* acquireCluster({
        size: 1,
        memberArgs: () => ["--strict-reconfig-check=false"],
      })
      const infra0 = cluster.members[0]!
      const clientPort = yield* Effect.promise(() => freePort())
      const peerUrl = `http://127.0.0.1:${yield* Effect.promise(() => freePort())}`
      const clientUrl = `http://127.0.0.1:${clientPort}`
      const dataDir = yield* tempDir("etcd-proxy-promote-")
      const promoteArgs = [
        "promote",
        "--endpoints",
        infra0.clientUrl,
        "--name",
        "infra1",
        "--peer-urls",
        peerUrl,
        "--data-dir",
        dataDir,
        "--listen-client-urls",
        clientUrl,
      ]

      // proxy0 runs on this machine with its state in dataDir/proxy.
      const proxyScope = yield* Scope.make()
      yield* Effect.addFinalizer(() => Scope.close(proxyScope, Exit.void))
      const proxy = yield* startProxy({
        port: clientPort,
        dataDir,
        args: ["--initial-cluster", cluster.initialCluster],
      }).pipe(Scope.extend(proxyScope))
      expect((yield* call(`${proxy.url}/v2/keys/x`)).status).toBe(404)
      expect(existsSync(join(dataDir, "proxy", "cluster"))).toBe(true)

      const refused = yield* runCli(promoteArgs)
      expect(refused.code).toBe(1)
      expect(refused.output).toContain(`a proxy (pid ${proxy.child.pid}) still holds`)
      expect(refused.output).toContain("stop it first")
      expect(refused.output).toContain("nothing was changed")
      expect(yield* memberList(infra0.clientUrl)).toEqual(["m1 started"])

      // The guide: stop the proxy, add the member, remove the proxy dir, start etcd.
      yield* Scope.close(proxyScope, Exit.void)
      const promoted = yield* runCli(promoteArgs)
      expect(promoted.code, promoted.output).toBe(0)
      // etcdctl lists the members, and so the initial cluster, in member id order.
      const newId = BigInt(`0x${/^Member +([0-9a-f]+) added/m.exec(promoted.output)?.[1] ?? "0"}`)
      const m1Id = BigInt(`0x${(yield* memberIds(infra0.clientUrl))["m1"]}`)
      const initial = [
        [m1Id, `m1=${infra0.peerUrl}`] as const,
        [newId, `infra1=${peerUrl}`] as const,
      ]
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([, entry]) => entry)
        .join(",")
      expect(promoted.output).toMatch(
        new RegExp(
          [
            "^Member [ 0-9a-f]{16} added to cluster [ 0-9a-f]{16}",
            "",
            'ETCD_NAME="infra1"',
            `ETCD_INITIAL_CLUSTER="${initial}"`,
            `ETCD_INITIAL_ADVERTISE_PEER_URLS="${peerUrl}"`,
            'ETCD_INITIAL_CLUSTER_STATE="existing"$',
          ].join("\n"),
          "m",
        ),
      )
      expect(existsSync(join(dataDir, "proxy"))).toBe(false)
      expect(existsSync(dataDir)).toBe(true)
      expect(yield* memberList(infra0.clientUrl)).toEqual([" unstarted", "m1 started"])

      const printed = printedCommand(promoted.output)
      expect(printed.env).toEqual({
        ETCD_NAME: "infra1",
        ETCD_INITIAL_CLUSTER: initial,
        ETCD_INITIAL_CLUSTER_STATE: "existing",
      })
      expect(printed.args).toEqual([
        "--listen-client-urls",
        clientUrl,
        "--advertise-client-urls",
        clientUrl,
        "--listen-peer-urls",
        peerUrl,
        "--initial-advertise-peer-urls",
        peerUrl,
        "--data-dir",
        dataDir,
      ])
      const infra1 = yield* Effect.acquireRelease(
        Effect.sync(() =>
          spawn(etcdBinary(), printed.args, {
            env: { PATH: process.env["PATH"] ?? "", ...printed.env },
            stdio: "ignore",
          }),
        ),
        (child) => Effect.promise(() => stopProcess(child)),
      )
      yield* Effect.promise(() => waitHealthy(clientUrl))
      expect(yield* memberList(infra0.clientUrl)).toEqual(["infra1 started", "m1 started"])
      expect(readdirSync(dataDir)).toEqual(["member"])

      // Run again: every step sees its work done and says so.
      const again = yield* runCli(promoteArgs)
      expect(again.code, again.output).toBe(0)
      expect(again.output).toContain("already in cluster")
      expect(again.output).toContain("not adding it again")
      expect(again.output).toContain("does not exist; nothing to remove")
      expect(yield* memberList(infra0.clientUrl)).toEqual(["infra1 started", "m1 started"])
      expect(infra1.exitCode).toBeNull()

      // A second proxy machine, promoted with --exec: promote starts etcd itself.
      const client2 = `http://127.0.0.1:${yield* Effect.promise(() => freePort())}`
      const peer2 = `http://127.0.0.1:${yield* Effect.promise(() => freePort())}`
      const dataDir2 = yield* tempDir("etcd-proxy-promote-")
      const proxy2Scope = yield* Scope.make()
      yield* Effect.addFinalizer(() => Scope.close(proxy2Scope, Exit.void))
      yield* startProxy({
        port: Number(new URL(client2).port),
        dataDir: dataDir2,
        args: ["--initial-cluster", cluster.initialCluster],
      }).pipe(Scope.extend(proxy2Scope))
      yield* Scope.close(proxy2Scope, Exit.void)
      expect(existsSync(join(dataDir2, "proxy"))).toBe(true)

      const missingBin = yield* runCli([
        "promote",
        "--endpoints",
        infra0.clientUrl,
        "--name",
        "infra2",
        "--peer-urls",
        peer2,
        "--data-dir",
        dataDir2,
        "--exec",
        "--etcd-bin",
        "/nonexistent/etcd",
      ])
      expect(missingBin.code).toBe(1)
      expect(missingBin.output).toContain("apt-get install etcd-server")
      expect(yield* memberList(infra0.clientUrl)).toHaveLength(2)

      const exec = yield* Effect.acquireRelease(
        Effect.sync(() =>
          spawnCli([
            "promote",
            "--endpoints",
            infra0.clientUrl,
            "--name",
            "infra2",
            "--peer-urls",
            peer2,
            "--data-dir",
            dataDir2,
            "--listen-client-urls",
            client2,
            "--exec",
          ]),
        ),
        (run) => Effect.promise(() => stopProcess(run.child, 10_000)),
      )
      yield* outputContains("promote --exec", exec.output, /started \S*etcd \(pid \d+\)/)
      yield* Effect.promise(() => waitHealthy(client2))
      expect(yield* memberList(infra0.clientUrl)).toEqual([
        "infra1 started",
        "infra2 started",
        "m1 started",
      ])
      expect(existsSync(join(dataDir2, "proxy"))).toBe(false)
      expect(existsSync(join(dataDir2, "member"))).toBe(true)

      // Stopping promote stops the member it started.
      const etcdPid = Number(/started \S*etcd \(pid (\d+)\)/.exec(exec.output())![1])
      yield* Effect.promise(() => stopProcess(exec.child, 10_000))
      expect(() => process.kill(etcdPid, 0)).toThrow()
    }),
  90_000,
)
