/**
 * Applications from another ecosystem through the proxy (SPEC §1, §3, §4): Debian's python-etcd
 * (v2 keys API over urllib3: long polls, client-side watch timeouts, locks, members) and
 * etcd3gw (v3 JSON gateway over requests: leases, transactions, locks, and watches that parse
 * each HTTP chunk as one message), read-write and read-only, against a real 3-member etcd 3.4
 * through the built CLI. The clients run in test/support/python_clients.py.
 */
import { execFile, spawnSync } from "node:child_process"
import { join } from "node:path"
import { describe, expect, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { EtcdCluster } from "../support/cluster.js"
import { startProxy, type ProxyProcess } from "../support/proxy.js"

class ReadWrite extends Context.Tag("test/ReadWriteProxy")<ReadWrite, ProxyProcess>() {}
class ReadOnly extends Context.Tag("test/ReadOnlyProxy")<ReadOnly, ProxyProcess>() {}

const environment = Layer.mergeAll(
  Layer.scoped(
    ReadWrite,
    Effect.flatMap(EtcdCluster, (cluster) =>
      startProxy({ args: ["--initial-cluster", cluster.initialCluster] }),
    ),
  ),
  Layer.scoped(
    ReadOnly,
    Effect.flatMap(EtcdCluster, (cluster) =>
      startProxy({ args: ["--proxy", "readonly", "--initial-cluster", cluster.initialCluster] }),
    ),
  ),
).pipe(Layer.provideMerge(EtcdCluster.layer({ size: 3 })))

const script = join(import.meta.dirname, "..", "support", "python_clients.py")

/**
 * Debian's python3, where apt installs python3-etcd and python3-etcd3gw (a `python3` first on
 * PATH, such as pyenv's, does not see them), or a loud error that says how to install them.
 */
const python = (): string => {
  const bin = process.env["PYTHON3_BIN"] ?? "/usr/bin/python3"
  const probe = spawnSync(bin, ["-c", "import etcd, etcd3gw"], { encoding: "utf8" })
  if (probe.error !== undefined || probe.status !== 0) {
    throw new Error(
      `python-etcd or etcd3gw not importable by ${bin}: install them with ` +
        `"apt-get install -y python3-etcd python3-etcd3gw", or set PYTHON3_BIN ` +
        `(${String(probe.error ?? probe.stderr.trim().split("\n").pop())})`,
    )
  }
  return bin
}

type Outcome = readonly ["ok", unknown] | readonly ["err", string]

/** Runs the client script: every step's outcome, by name. */
const runClients = (mode: "rw" | "ro", url: string, writerUrl: string, prefix: string) =>
  Effect.async<Record<string, Outcome>, Error>((resume) => {
    const child = execFile(
      python(),
      [script, mode, url, writerUrl, prefix],
      { timeout: 40_000, killSignal: "SIGKILL" },
      (error, stdout, stderr) => {
        if (error !== null) {
          resume(Effect.fail(new Error(`python clients failed: ${error.message}\n${stderr}`)))
        } else {
          resume(Effect.succeed(JSON.parse(stdout) as Record<string, Outcome>))
        }
      },
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/** A v2 key's value, asked of a member directly. */
const memberValue = (memberUrl: string, key: string) =>
  Effect.promise(async () => {
    const response = await fetch(`${memberUrl}/v2/keys${key}`)
    return ((await response.json()) as { node?: { value?: string } }).node?.value
  })

const ok = (value: unknown): Outcome => ["ok", value]

layer(environment, { excludeTestServices: true, timeout: "90 seconds" })(
  "python-etcd and etcd3gw through the proxy",
  (it) => {
    describe("read-write", () => {
      it.scoped("every call answers as a member would", () =>
        Effect.gen(function* () {
          const proxy = yield* ReadWrite
          const cluster = yield* EtcdCluster
          const got = yield* runClients("rw", proxy.url, proxy.url, "pyrw")

          expect(got["v2 write"]).toEqual(ok("1"))
          expect(got["v2 read"]).toEqual(ok("1"))
          expect(got["v2 dir"]).toEqual(ok(true))
          expect(got["v2 recursive read"]).toEqual(ok(["/pyrw/a", "/pyrw/d/x"]))
          expect(got["v2 in-order keys"]).toEqual(ok(["v0", "v1", "v2"]))
          expect(got["v2 ttl"]).toEqual(ok(30))
          expect(got["v2 test_and_set"]).toEqual(ok("2"))
          expect(got["v2 test_and_set stale"]).toEqual([
            "err",
            "EtcdCompareFailed: Compare failed : [1 != 2]",
          ])
          // acquired; not acquirable by a second client meanwhile; released
          expect(got["v2 lock"]).toEqual(ok([true, false, false]))
          expect(got["v2 members"]).toEqual(ok(["m1", "m2", "m3"]))
          expect(got["v2 leader"]?.[0]).toBe("ok")
          expect(got["v2 delete dir"]).toEqual(ok("/pyrw/d"))
          // Long polls: answered by a later write, from a past index, cut by the client's own
          // timeout (the next request on the same pool still works), and watched for ever.
          expect(got["v2 watch"]).toEqual(ok("1"))
          expect(got["v2 read waitIndex"]).toEqual(ok("1"))
          expect(got["v2 watch client timeout"]).toEqual(ok("timed out after 1 s"))
          expect(got["v2 read after timeout"]).toEqual(ok("1"))
          expect(got["v2 eternal_watch"]).toEqual(ok(["e1", "e2"]))

          expect(got["gw put"]).toEqual(ok(true))
          expect(got["gw get"]).toEqual(ok(["1"]))
          expect(got["gw create existing"]).toEqual(ok(false))
          expect(got["gw replace"]).toEqual(ok(true))
          // alive, its keys, gone with the lease
          expect(got["gw lease"]).toEqual(ok([true, ["pyrw/leased"], []]))
          expect(got["gw txn"]).toEqual(ok([true, "yes"]))
          // acquired; held by the first; released; then the second gets it
          expect(got["gw lock"]).toEqual(ok([true, false, true, true]))
          expect(got["gw members"]).toEqual(ok(["m1", "m2", "m3"]))
          expect(got["gw watch_prefix"]).toEqual(ok(Array.from({ length: 20 }, (_, i) => `v${i}`)))
          expect(got["gw watch_once"]).toEqual(ok("once"))

          expect(yield* memberValue(cluster.members[2]!.clientUrl, "/pyrw/a")).toBe("2")
        }),
      )
    })

    describe("read-only", () => {
      it.scoped("reads and watches pass; writes answer 501 and reach no member", () =>
        Effect.gen(function* () {
          const proxy = yield* ReadOnly
          const writer = yield* ReadWrite
          const cluster = yield* EtcdCluster
          const got = yield* runClients("ro", proxy.url, writer.url, "pyro")

          expect(got["v2 read"]).toEqual(ok("seeded"))
          expect(got["v2 write"]).toEqual([
            "err",
            "EtcdException: httpproxy: read-only proxy refuses PUT /v2/keys/pyro/seed : None",
          ])
          expect(got["v2 lock"]).toEqual([
            "err",
            "EtcdException: httpproxy: read-only proxy refuses POST /v2/keys/_locks/pyro : None",
          ])
          expect(got["v2 watch"]).toEqual(ok("1"))
          expect(got["v2 read waitIndex"]).toEqual(ok("1"))
          expect(got["v2 watch client timeout"]).toEqual(ok("timed out after 1 s"))
          expect(got["v2 read after timeout"]).toEqual(ok("1"))
          expect(got["v2 eternal_watch"]).toEqual(ok(["e1", "e2"]))

          expect(got["gw get"]).toEqual(ok(["seeded"]))
          expect(got["gw put"]).toEqual([
            "err",
            'Etcd3Exception: Not Implemented {"message":"httpproxy: read-only proxy refuses POST /v3/kv/put"}',
          ])
          expect(got["gw lease grant"]).toEqual([
            "err",
            'Etcd3Exception: Not Implemented {"message":"httpproxy: read-only proxy refuses POST /v3/lease/grant"}',
          ])
          // etcd3gw asks for a lease's keys on the kv/lease/timetolive binding
          expect(got["gw lease keys"]).toEqual(ok(["pyro/leased"]))
          expect(got["gw members"]).toEqual(ok(3))
          expect(got["gw watch_prefix"]).toEqual(ok(Array.from({ length: 20 }, (_, i) => `v${i}`)))
          expect(got["gw watch_once"]).toEqual(ok("once"))

          expect(yield* memberValue(cluster.members[0]!.clientUrl, "/pyro/seed")).toBe("seeded")
        }),
      )
    })
  },
)
