/** DNS SRV discovery (SPEC §6.4) against a fake resolver: record names, URL forms, failures. */
import { expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { SrvLookupError } from "../../src/domain/Discovery.js"
import { Discovery, srvServices } from "../../src/services/cluster/Discovery.js"
import { SrvResolver, type SrvRecord } from "../../src/services/cluster/SrvResolver.js"

/** A resolver answering from a table; every name asked is recorded. */
const fakeResolver = (table: Record<string, ReadonlyArray<SrvRecord>>) => {
  const asked: Array<string> = []
  const layer = Layer.succeed(SrvResolver, {
    server: "fake",
    resolveSrv: (name: string) =>
      Effect.suspend(() => {
        asked.push(name)
        const records = table[name]
        return records === undefined
          ? Effect.fail(new SrvLookupError({ name, reason: "no such SRV record" }))
          : Effect.succeed(records)
      }),
  })
  return { asked, layer }
}

const record = (name: string, port: number): SrvRecord => ({ name, port, priority: 0, weight: 0 })

const discover = (
  domain: string,
  serviceName: string | undefined,
  resolver: ReturnType<typeof fakeResolver>,
) =>
  Effect.gen(function* () {
    const discovery = yield* Discovery
    return {
      peers: yield* discovery.peerUrls,
      status: discovery.status(),
      source: discovery.source,
    }
  }).pipe(
    Effect.provide(Discovery.fromSrv(domain, serviceName).pipe(Layer.provide(resolver.layer))),
  )

it("service names: -ssl for https, plain for http, -<name> appended to both", () => {
  expect(srvServices("example.com", undefined)).toEqual([
    { name: "_etcd-server-ssl._tcp.example.com", scheme: "https" },
    { name: "_etcd-server._tcp.example.com", scheme: "http" },
  ])
  expect(srvServices("example.com.", "blue").map((s) => s.name)).toEqual([
    "_etcd-server-ssl-blue._tcp.example.com",
    "_etcd-server-blue._tcp.example.com",
  ])
})

it.effect("both services count; targets lose their trailing dot; the peers come sorted", () =>
  Effect.gen(function* () {
    const resolver = fakeResolver({
      "_etcd-server-ssl._tcp.example.com": [record("m2.example.com.", 2380)],
      "_etcd-server._tcp.example.com": [
        record("m3.example.com.", 2380),
        record("m1.example.com", 12380),
      ],
    })
    const found = yield* discover("example.com", undefined, resolver)
    expect(found.peers).toEqual([
      "http://m1.example.com:12380",
      "http://m3.example.com:2380",
      "https://m2.example.com:2380",
    ])
    expect(found.status).toEqual({ _tag: "Complete" })
    expect(found.source).toBe("--discovery-srv example.com")
  }),
)

it.effect("--discovery-srv-name asks only the named services", () =>
  Effect.gen(function* () {
    const resolver = fakeResolver({
      "_etcd-server._tcp.example.com": [record("wrong.example.com.", 2380)],
      "_etcd-server-blue._tcp.example.com": [record("blue.example.com.", 2380)],
    })
    const found = yield* discover("example.com", "blue", resolver)
    expect(found.peers).toEqual(["http://blue.example.com:2380"])
    expect([...resolver.asked].sort()).toEqual([
      "_etcd-server-blue._tcp.example.com",
      "_etcd-server-ssl-blue._tcp.example.com",
    ])
  }),
)

it.effect("no record under either name fails with both look-ups named", () =>
  Effect.gen(function* () {
    const error = yield* discover("example.com", undefined, fakeResolver({})).pipe(Effect.flip)
    expect(error._tag).toBe("SrvDiscoveryFailed")
    expect(error.message).toBe(
      "DNS SRV discovery for example.com found no members: _etcd-server-ssl._tcp.example.com: no such SRV record; _etcd-server._tcp.example.com: no such SRV record; publish SRV records for the members' peer ports, or use --initial-cluster",
    )
  }),
)
