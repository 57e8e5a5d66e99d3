/**
 * The clients people use, through a read-write proxy on one port (SPEC §3.10): etcdctl v3
 * (gRPC over HTTP/2, relayed whole), etcdctl v2 (HTTP/1.1) and the npm etcd3 client, against a
 * real 3-member etcd 3.4, through the built CLI.
 */
import { describe, expect, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Etcd3 } from "etcd3"
import { freePort } from "../../scripts/lib/cluster.mjs"
import { acquireCluster, EtcdCluster } from "../support/cluster.js"
import { firstPut } from "../support/etcd3.js"
import { etcdctl, putRetrying, spawnEtcdctl } from "../support/etcdctl.js"
import { startProxy, type ProxyProcess } from "../support/proxy.js"

class Proxy extends Context.Tag("test/ReadWriteProxy")<Proxy, ProxyProcess>() {}

const environment = Layer.scoped(
  Proxy,
  Effect.flatMap(EtcdCluster, (cluster) =>
    startProxy({ args: ["--initial-cluster", cluster.initialCluster] }),
  ),
).pipe(Layer.provideMerge(EtcdCluster.layer({ size: 3 })))

const ok = (result: { code: number; stdout: string; stderr: string }) => {
  expect(result.code, result.stderr).toBe(0)
  return result.stdout
}

/** The cluster's current revision, asked of a member directly. */
const revision = (endpoint: string) =>
  Effect.map(etcdctl(["--endpoints", endpoint, "get", "revision-probe", "-w", "json"]), (r) =>
    Number((JSON.parse(ok(r)) as { header: { revision: string | number } }).header.revision),
  )

const counter = (metrics: string, name: string, labels: string): number => {
  const line = metrics.split("\n").find((l) => l.startsWith(`${name}{${labels}}`))
  return line === undefined ? 0 : Number(line.split(" ").pop())
}

const metricsOf = (url: string) =>
  Effect.promise(() => fetch(`${url}/metrics`).then((response) => response.text()))

/** The endpoint a sticky proxy sends everything to: the first of its order. */
const firstEndpoint = (url: string) =>
  Effect.promise(async () => {
    const response = await fetch(`${url}/v2/config/local/proxy`)
    return ((await response.json()) as { endpoints: Array<string> }).endpoints[0]!
  })

layer(environment, { excludeTestServices: true, timeout: "60 seconds" })(
  "real clients through a read-write proxy",
  (it) => {
    describe("etcdctl v3 (gRPC)", () => {
      it.scoped("put, get --prefix, del and txn", () =>
        Effect.gen(function* () {
          const proxy = yield* Proxy
          const cluster = yield* EtcdCluster
          const via = ["--endpoints", proxy.url]
          expect(ok(yield* etcdctl([...via, "put", "/ctl/a", "one"]))).toBe("OK\n")
          expect(ok(yield* etcdctl([...via, "put", "/ctl/b", "two"]))).toBe("OK\n")
          expect(ok(yield* etcdctl([...via, "get", "--prefix", "/ctl/"]))).toBe(
            "/ctl/a\none\n/ctl/b\ntwo\n",
          )
          // The writes are in the cluster, not somewhere in the proxy.
          const direct = ["--endpoints", cluster.members[2]!.clientUrl]
          expect(ok(yield* etcdctl([...direct, "get", "/ctl/a", "--print-value-only"]))).toBe(
            "one\n",
          )

          expect(ok(yield* etcdctl([...via, "del", "/ctl/a"]))).toBe("1\n")
          expect(ok(yield* etcdctl([...direct, "get", "/ctl/a"]))).toBe("")

          const txn = yield* etcdctl([...via, "txn"], {
            input: 'value("/ctl/b") = "two"\n\nput /ctl/c three\n\nput /ctl/c never\n\n',
          })
          expect(ok(txn)).toBe("SUCCESS\n\nOK\n")
          expect(ok(yield* etcdctl([...via, "get", "/ctl/c", "--print-value-only"]))).toBe(
            "three\n",
          )
        }),
      )

      it.scoped("lease grant, then lease keep-alive keeps the key past its TTL", () =>
        Effect.gen(function* () {
          const proxy = yield* Proxy
          const cluster = yield* EtcdCluster
          const via = ["--endpoints", proxy.url]
          const granted = ok(yield* etcdctl([...via, "lease", "grant", "2"]))
          const id = /lease ([0-9a-f]+) granted with TTL\(2s\)/.exec(granted)?.[1]
          expect(id, granted).toBeDefined()
          expect(ok(yield* etcdctl([...via, "put", "--lease", id!, "/ctl/leased", "v"]))).toBe(
            "OK\n",
          )

          const keepAlive = yield* spawnEtcdctl([...via, "lease", "keep-alive", id!])
          yield* keepAlive.waitFor(`lease ${id} keepalived with TTL(2)`)
          yield* Effect.sleep("3 seconds")
          // Past the 2 s TTL: only the keep-alive stream through the proxy holds the key.
          expect(keepAlive.output().split("keepalived").length - 1).toBeGreaterThanOrEqual(3)
          const direct = ["--endpoints", cluster.members[0]!.clientUrl]
          expect(ok(yield* etcdctl([...direct, "get", "/ctl/leased", "--print-value-only"]))).toBe(
            "v\n",
          )
        }),
      )

      it.scoped("watch receives the events another client makes", () =>
        Effect.gen(function* () {
          const proxy = yield* Proxy
          const cluster = yield* EtcdCluster
          const member = cluster.members[1]!.clientUrl
          const from = (yield* revision(member)) + 1
          const watch = yield* spawnEtcdctl([
            "--endpoints",
            proxy.url,
            "watch",
            "--prefix",
            "/ctl/watched/",
            `--rev=${from}`,
          ])
          ok(yield* etcdctl(["--endpoints", member, "put", "/ctl/watched/x", "first"]))
          ok(yield* etcdctl(["--endpoints", member, "put", "/ctl/watched/y", "second"]))
          yield* watch.waitFor("second")
          expect(watch.output()).toContain(
            "PUT\n/ctl/watched/x\nfirst\nPUT\n/ctl/watched/y\nsecond\n",
          )
        }),
      )

      it.scoped("member list and endpoint status answer as a member would", () =>
        Effect.gen(function* () {
          const proxy = yield* Proxy
          const cluster = yield* EtcdCluster
          const list = ok(yield* etcdctl(["--endpoints", proxy.url, "member", "list"]))
          for (const member of cluster.members) {
            expect(list).toContain(
              `started, ${member.name}, ${member.peerUrl}, ${member.clientUrl}`,
            )
          }
          // etcdctl 3.4 sends `:authority: http://host:port` here; members accept it, so must we.
          const status = ok(
            yield* etcdctl(["--endpoints", proxy.url, "endpoint", "status", "-w", "json"]),
          )
          const [entry] = JSON.parse(status) as Array<{
            Endpoint: string
            Status: { version: string; header: { cluster_id: number } }
          }>
          expect(entry!.Endpoint).toBe(proxy.url)
          expect(entry!.Status.version).toBe("3.4.23")
        }),
      )
    })

    it.scoped("etcdctl v2 (HTTP/1.1 on the same port): set, get, ls, watch, mk, rm", () =>
      Effect.gen(function* () {
        const proxy = yield* Proxy
        const cluster = yield* EtcdCluster
        // Without --no-sync etcdctl v2 asks for the member list and then talks to the members.
        const v2 = (args: ReadonlyArray<string>) =>
          etcdctl(["--no-sync", "--endpoints", proxy.url, ...args], { api: 2 })
        const putsBefore = counter(
          yield* metricsOf(proxy.url),
          "etcd_proxy_requests_total",
          'method="PUT"',
        )

        expect(ok(yield* v2(["set", "/v2ctl/a", "alpha"]))).toBe("alpha\n")
        expect(ok(yield* v2(["get", "/v2ctl/a"]))).toBe("alpha\n")
        expect(ok(yield* v2(["mk", "/v2ctl/b", "beta"]))).toBe("beta\n")
        const again = yield* v2(["mk", "/v2ctl/b", "other"])
        expect(again.code).not.toBe(0)
        expect(again.stderr).toContain("Key already exists")
        expect(
          ok(yield* v2(["ls", "/v2ctl"]))
            .split("\n")
            .sort(),
        ).toEqual(["", "/v2ctl/a", "/v2ctl/b"])

        const watch = yield* spawnEtcdctl(
          ["--no-sync", "--endpoints", proxy.url, "watch", "/v2ctl/a"],
          { api: 2 },
        )
        // The v2 watch is a long poll: it must be waiting before the change is made.
        yield* Effect.sleep("500 millis")
        const direct = cluster.members[1]!.clientUrl
        ok(
          yield* etcdctl(["--no-sync", "--endpoints", direct, "set", "/v2ctl/a", "changed"], {
            api: 2,
          }),
        )
        yield* watch.waitFor("changed")
        expect(yield* Effect.promise(() => watch.exited)).toBe(0)

        expect(ok(yield* v2(["rm", "/v2ctl/b"]))).toBe("PrevNode.Value: beta\n")
        const gone = yield* v2(["get", "/v2ctl/b"])
        expect(gone.stderr).toContain("Key not found")

        const putsAfter = counter(
          yield* metricsOf(proxy.url),
          "etcd_proxy_requests_total",
          'method="PUT"',
        )
        expect(putsAfter - putsBefore).toBeGreaterThanOrEqual(3)
      }),
    )

    it.scoped("the npm etcd3 client: put, get and watch", () =>
      Effect.gen(function* () {
        const proxy = yield* Proxy
        const cluster = yield* EtcdCluster
        const client = yield* Effect.acquireRelease(
          Effect.sync(() => new Etcd3({ hosts: proxy.url, dialTimeout: 3_000 })),
          (client) => Effect.sync(() => client.close()),
        )
        yield* Effect.promise(() => client.put("npm/k").value("from-npm"))
        expect(yield* Effect.promise(() => client.get("npm/k").string())).toBe("from-npm")

        const seen = yield* firstPut(client, "npm/watched")
        ok(
          yield* etcdctl([
            "--endpoints",
            cluster.members[0]!.clientUrl,
            "put",
            "npm/watched",
            "from-etcdctl",
          ]),
        )
        expect(yield* Effect.promise(() => seen).pipe(Effect.timeout("10 seconds"))).toBe(
          "from-etcdctl",
        )
      }),
    )

    it.scoped("with no member to relay to, a gRPC call fails with the proxy's reason", () =>
      Effect.gen(function* () {
        const nobody = yield* Effect.promise(() => freePort())
        const proxy = yield* startProxy({
          args: ["--initial-cluster", `gone=http://127.0.0.1:${nobody}`],
        })
        const put = yield* etcdctl(
          [
            "--endpoints",
            proxy.url,
            "--dial-timeout",
            "2s",
            "--command-timeout",
            "3s",
            "put",
            "k",
            "v",
          ],
          { timeoutMs: 10_000 },
        )
        expect(put.code).not.toBe(0)
        expect(put.stderr).toContain(
          "code = Unavailable desc = httpproxy: zero endpoints currently available",
        )
      }),
    )

    it.scoped(
      "a client URL that refuses connections is passed over within the same connection",
      () =>
        Effect.gen(function* () {
          const dead = `http://127.0.0.1:${yield* Effect.promise(() => freePort())}`
          const small = yield* acquireCluster({
            size: 1,
            memberArgs: (_, member) => ["--advertise-client-urls", `${dead},${member.clientUrl}`],
          })
          const proxy = yield* startProxy({
            args: ["--initial-cluster", small.initialCluster, "--proxy-balance", "round-robin"],
          })
          // Round-robin: one of two connections starts at the dead URL and must move on by itself;
          // etcdctl would print a retry warning had it seen the failure.
          for (const _ of [1, 2]) {
            const get = yield* etcdctl(["--endpoints", proxy.url, "get", "k"])
            expect(get.code, get.stderr).toBe(0)
            expect(get.stderr).toBe("")
          }
          expect(proxy.output()).toMatch(
            new RegExp(`endpoint marked failed" endpoint=${dead} .*error=ECONNREFUSED`),
          )
        }),
    )

    // Last: it leaves the cluster with two members.
    it.scoped("a watch survives the member it was relayed to being killed", () =>
      Effect.gen(function* () {
        const proxy = yield* Proxy
        const cluster = yield* EtcdCluster
        const used = yield* firstEndpoint(proxy.url)
        const victim = cluster.members.findIndex((m) => m.clientUrl === used)
        expect(victim, used).toBeGreaterThanOrEqual(0)
        const survivor = cluster.members[(victim + 1) % cluster.members.length]!.clientUrl

        const from = (yield* revision(survivor)) + 1
        const watch = yield* spawnEtcdctl([
          "--endpoints",
          proxy.url,
          "watch",
          "/ctl/failover",
          `--rev=${from}`,
        ])
        ok(yield* etcdctl(["--endpoints", survivor, "put", "/ctl/failover", "before"]))
        yield* watch.waitFor("before")

        yield* Effect.promise(() => cluster.killMember(victim))
        const write = (value: string) => putRetrying(survivor, "/ctl/failover", value)
        yield* write("after-1")
        yield* write("after-2")
        yield* watch.waitFor("after-2", 15_000)
        expect(watch.output()).toContain("PUT\n/ctl/failover\nafter-1\n")
        expect(watch.output()).toContain("PUT\n/ctl/failover\nafter-2\n")

        const config = yield* Effect.promise(() =>
          fetch(`${proxy.url}/v2/config/local/proxy`).then((r) => r.json()),
        )
        expect((config as { endpoints: Array<string> }).endpoints).not.toContain(used)
      }),
    )
  },
)
