/** `etcd-proxy join` with the real discovery service and real etcd (SPEC §10). */
import { chmodSync, existsSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { freePort, memberFlags, stopProcess } from "../../scripts/lib/cluster.mjs"
import { DiscoveryServiceTag } from "../support/discoveryService.js"
import { etcdctl } from "../support/etcdctl.js"
import { call } from "../support/http.js"
import { runCli, spawnCli, tempDir } from "../support/proxy.js"
import { eventually, outputContains } from "../support/wait.js"

interface Joiner {
  readonly name: string
  readonly clientUrl: string
  readonly dataDir: string
  readonly output: () => string
}

/** One `etcd-proxy join` with a member's usual flags, stopped (and its etcd with it) by the scope. */
const startJoin = (
  token: string,
  name: string,
  extra: ReadonlyArray<string> = [],
  env: Readonly<Record<string, string>> = {},
) =>
  Effect.gen(function* () {
    const clientUrl = `http://127.0.0.1:${yield* Effect.promise(() => freePort())}`
    const peerUrl = `http://127.0.0.1:${yield* Effect.promise(() => freePort())}`
    const dataDir = join(yield* tempDir(`etcd-proxy-join-${name}-`), "data")
    const run = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawnCli(
          [
            "join",
            "--discovery",
            token,
            ...memberFlags({ name, dataDir, clientUrl, peerUrl, logLevel: "warn" }),
            "--proxy-refresh-interval",
            "1000",
            ...extra,
          ],
          env,
        ),
      ),
      (run) => Effect.promise(() => stopProcess(run.child, 10_000)),
    )
    const joiner: Joiner = { name, clientUrl, dataDir, output: run.output }
    return joiner
  })

/** `member` when the URL is an etcd member, `proxy` when it is our proxy (which serves its config path). */
const roleOf = (joiner: Joiner) =>
  Effect.gen(function* () {
    const health = yield* call(`${joiner.clientUrl}/health`).pipe(
      Effect.timeout("2 seconds"),
      Effect.catchAllDefect(() => Effect.succeed(undefined)),
      Effect.catchAll(() => Effect.succeed(undefined)),
    )
    if (health === undefined || !health.body.includes('"true"')) return "starting"
    const config = yield* call(`${joiner.clientUrl}/v2/config/local/proxy`)
    return config.status === 200 ? "proxy" : "member"
  })

const write = (url: string, key: string, value: string) =>
  call(`${url}/v2/keys/${key}`, {
    method: "PUT",
    body: `value=${value}`,
    headers: { "content-type": "application/x-www-form-urlencoded" },
  })

layer(DiscoveryServiceTag.layer, { excludeTestServices: true, timeout: "90 seconds" })(
  "join",
  (it) => {
    it.scoped(
      "four joins on a size-3 token give three members and one proxy that forwards; a fifth with --discovery-fallback exit exits 1",
      () =>
        Effect.gen(function* () {
          const service = yield* DiscoveryServiceTag
          const token = yield* service.newToken(3)
          const joiners = yield* Effect.forEach(["j1", "j2", "j3", "j4"], (name) =>
            startJoin(token, name),
          )
          const roles = yield* eventually(
            "three members and one proxy",
            Effect.forEach(joiners, roleOf, { concurrency: "unbounded" }),
            (roles) => !roles.includes("starting"),
            { timeoutMs: 45_000, intervalMs: 250 },
          ).pipe(
            Effect.mapError(
              (error) =>
                new Error(
                  `${error.message}\n${joiners.map((j) => `--- ${j.name}\n${j.output().slice(-1_500)}`).join("\n")}`,
                ),
            ),
          )
          expect([...roles].sort()).toEqual(["member", "member", "member", "proxy"])
          const proxy = joiners[roles.indexOf("proxy")]!
          const members = joiners.filter((_, i) => roles[i] === "member")

          const list = yield* etcdctl(["--endpoints", members[0]!.clientUrl, "member", "list"])
          expect(list.code).toBe(0)
          const listed = list.stdout.trim().split("\n")
          expect(listed).toHaveLength(3)
          for (const member of members) {
            expect(listed.some((l) => l.includes(`started, ${member.name},`))).toBe(true)
          }

          const put = yield* eventually(
            "a write through the fallback proxy",
            write(proxy.clientUrl, "joined", "yes"),
            (a) => a.status === 201 || a.status === 200,
          )
          expect(put.body).toContain('"value":"yes"')
          expect((yield* call(`${members[1]!.clientUrl}/v2/keys/joined`)).body).toContain(
            '"value":"yes"',
          )
          expect(proxy.output()).toContain("running as a read-write proxy instead")

          // Never a data dir holding both.
          expect(existsSync(join(proxy.dataDir, "proxy"))).toBe(true)
          expect(existsSync(join(proxy.dataDir, "member"))).toBe(false)
          for (const member of members) {
            expect(existsSync(join(member.dataDir, "member"))).toBe(true)
            expect(existsSync(join(member.dataDir, "proxy"))).toBe(false)
          }

          const fifthDir = join(yield* tempDir("etcd-proxy-join-j5-"), "data")
          const fifth = yield* runCli([
            "join",
            "--discovery",
            token,
            "--discovery-fallback",
            "exit",
            "--name",
            "j5",
            "--data-dir",
            fifthDir,
            "--listen-client-urls",
            `http://127.0.0.1:${yield* Effect.promise(() => freePort())}`,
          ])
          expect(fifth.code).toBe(1)
          expect(fifth.output).toMatch(
            new RegExp(
              `etcd-proxy: discovery cluster ${token} is full \\(\\d registered, size 3\\); --discovery-fallback=exit, so this machine does not become a proxy`,
            ),
          )
          expect(existsSync(join(fifthDir, "member"))).toBe(false)
          expect(existsSync(join(fifthDir, "proxy"))).toBe(false)
        }),
    )

    it.scoped(
      "when etcd itself finds the cluster full, join removes the member/ it left and runs the proxy",
      () =>
        Effect.gen(function* () {
          const service = yield* DiscoveryServiceTag
          const token = yield* service.newToken(1)
          // The real etcd, started only once another member has taken the token's one place:
          // join's own check saw room, etcd then finds the cluster full and exits.
          const dir = yield* tempDir("etcd-proxy-join-bin-")
          const late = join(dir, "late-etcd")
          writeFileSync(
            late,
            [
              "#!/bin/sh",
              `until curl -s "$JOIN_TEST_TOKEN" | grep -q '"value"'; do sleep 0.1; done`,
              'exec etcd "$@"',
              "",
            ].join("\n"),
          )
          chmodSync(late, 0o755)
          const a = yield* startJoin(token, "ja", ["--etcd-bin", late], {
            JOIN_TEST_TOKEN: token,
          })
          yield* outputContains("join ja", a.output, /has room \(0 of 1 registered\)/)
          yield* outputContains("join ja", a.output, "started")

          const b = yield* startJoin(token, "jb")
          yield* eventually("jb a member", roleOf(b), (role) => role === "member", {
            timeoutMs: 30_000,
          })
          yield* outputContains(
            "join ja",
            a.output,
            `etcd found the discovery cluster ${token} full when it tried to register; running as a read-write proxy instead`,
            30_000,
          )
          yield* eventually("ja a proxy", roleOf(a), (role) => role === "proxy", {
            timeoutMs: 20_000,
          })
          const put = yield* write(a.clientUrl, "late", "proxied")
          expect(put.status).toBe(201)
          expect((yield* call(`${b.clientUrl}/v2/keys/late`)).body).toContain('"value":"proxied"')
          expect(existsSync(join(a.dataDir, "member"))).toBe(false)
          expect(existsSync(join(a.dataDir, "proxy"))).toBe(true)
        }),
    )
  },
)
