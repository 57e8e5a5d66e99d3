/** `--discovery-srv` against a real DNS server (dnsmasq) on loopback and a real etcd member (SPEC §6.4). */
import { expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { acquireCluster } from "../support/cluster.js"
import { startDns } from "../support/dns.js"
import { call, json } from "../support/http.js"
import { runCli, startProxy, tempDir } from "../support/proxy.js"

interface ProxyView {
  endpoints: Array<string>
  discovery: { state: string }
}

const port = (url: string) => Number(new URL(url).port)

it.scopedLive(
  "the proxy finds the members in SRV records: plain-http records count, --discovery-srv-name picks the service, no record fails start-up",
  () =>
    Effect.gen(function* () {
      const cluster = yield* acquireCluster({ size: 1 })
      const member = cluster.members[0]!
      const dns = yield* startDns([
        { name: "_etcd-server._tcp.etcd.test", target: "127.0.0.1", port: port(member.peerUrl) },
        // --discovery-srv-name blue must use only the -blue service; the plain one is a dead end.
        {
          name: "_etcd-server-blue._tcp.other.test",
          target: "127.0.0.1",
          port: port(member.peerUrl),
        },
        { name: "_etcd-server._tcp.other.test", target: "127.0.0.1", port: 9 },
        { name: "_etcd-server-ssl._tcp.tls.test", target: "127.0.0.1", port: 2380 },
      ])

      const plain = yield* startProxy({
        args: ["--discovery-srv", "etcd.test", "--discovery-srv-dns", dns.address],
      })
      const put = yield* call(`${plain.url}/v2/keys/srv`, {
        method: "PUT",
        body: "value=found",
        headers: { "content-type": "application/x-www-form-urlencoded" },
      })
      expect(put.status).toBe(201)
      expect((yield* call(`${member.clientUrl}/v2/keys/srv`)).body).toContain('"value":"found"')
      const view = json(yield* call(`${plain.url}/v2/config/local/proxy`)) as ProxyView
      expect(view.endpoints).toEqual([member.clientUrl])
      expect(view.discovery).toEqual({ state: "complete" })
      expect(plain.output()).toContain(`peers=${member.peerUrl}`)
      expect(plain.output()).toContain(`dns=${dns.address}`)

      const named = yield* startProxy({
        args: [
          "--discovery-srv",
          "other.test",
          "--discovery-srv-name",
          "blue",
          "--discovery-srv-dns",
          dns.address,
        ],
      })
      expect((yield* call(`${named.url}/v2/keys/srv`)).body).toContain('"value":"found"')
      expect(named.output()).toContain(`peers=${member.peerUrl} `)
      expect(named.output()).not.toContain("127.0.0.1:9")

      // An _etcd-server-ssl record names an https peer URL.
      const tls = yield* startProxy({
        args: ["--discovery-srv", "tls.test", "--discovery-srv-dns", dns.address],
      })
      expect(tls.output()).toContain("peers=https://127.0.0.1:2380")

      const dataDir = yield* tempDir("etcd-proxy-srv-")
      const missing = yield* runCli([
        "--discovery-srv",
        "missing.test",
        "--discovery-srv-dns",
        dns.address,
        "--listen-client-urls",
        "http://127.0.0.1:0",
        "--data-dir",
        dataDir,
      ])
      expect(missing.code).toBe(1)
      expect(missing.output).toContain("DNS SRV discovery for missing.test found no members")
      expect(missing.output).toContain("_etcd-server-ssl._tcp.missing.test")
      expect(missing.output).toContain("_etcd-server._tcp.missing.test")
    }),
  60_000,
)
