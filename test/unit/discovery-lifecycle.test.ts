/** promote's etcdctl output and member answers, and join's argument split (SPEC §9, §10): pure parts. */
import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import { readCommandLine } from "../../src/cli/commandLine.js"
import { joinCommand } from "../../src/cli/commands.js"
import {
  decodeV2MemberList,
  decodeV3MemberAdd,
  decodeV3MemberList,
  memberAddOutput,
  memberWithPeerUrls,
  shellWord,
} from "../../src/domain/Lifecycle.js"

// Captured from etcd 3.4.23's v3 gateway and v2 members API on one cluster.
const v3List = `{"header":{"cluster_id":"258049805938217310","member_id":"770772523569504822","raft_term":"2"},"members":[{"ID":"770772523569504822","name":"m1","peerURLs":["http://127.0.0.1:24011"],"clientURLs":["http://127.0.0.1:24010"]},{"ID":"5501709929508784970","name":"m2","peerURLs":["http://127.0.0.1:24021"],"clientURLs":["http://127.0.0.1:24020"]},{"ID":"9024589546728574959","peerURLs":["http://127.0.0.1:24091"]},{"ID":"15124573964950457562","name":"m3","peerURLs":["http://127.0.0.1:24031"],"clientURLs":["http://127.0.0.1:24030"]}]}`
const v2List = `{"members":[{"id":"ab25586c5fde236","name":"m1","peerURLs":["http://127.0.0.1:24011"],"clientURLs":["http://127.0.0.1:24010"]},{"id":"4c5a0008159c4b4a","name":"m2","peerURLs":["http://127.0.0.1:24021"],"clientURLs":["http://127.0.0.1:24020"]},{"id":"7d3dc860e075cfef","name":"","peerURLs":["http://127.0.0.1:24091"],"clientURLs":[]},{"id":"d1e547e33ffe4cda","name":"m3","peerURLs":["http://127.0.0.1:24031"],"clientURLs":["http://127.0.0.1:24030"]}]}`

// What `ETCDCTL_API=3 etcdctl member add infra9 --peer-urls http://127.0.0.1:24091` printed there.
const etcdctlOutput = `Member 7d3dc860e075cfef added to cluster  394c6ee694e515e

ETCD_NAME="infra9"
ETCD_INITIAL_CLUSTER="m1=http://127.0.0.1:24011,m2=http://127.0.0.1:24021,infra9=http://127.0.0.1:24091,m3=http://127.0.0.1:24031"
ETCD_INITIAL_ADVERTISE_PEER_URLS="http://127.0.0.1:24091"
ETCD_INITIAL_CLUSTER_STATE="existing"`

describe("member add output", () => {
  it("is etcdctl's, byte for byte, from the v3 gateway's answer (ids above 2^53 intact)", () => {
    const view = Either.getOrThrow(decodeV3MemberList(v3List))
    expect(view.clusterId).toBe(0x394c6ee694e515en)
    expect(view.members.map((m) => m.id.toString(16))).toEqual([
      "ab25586c5fde236",
      "4c5a0008159c4b4a",
      "7d3dc860e075cfef",
      "d1e547e33ffe4cda",
    ])
    expect(memberAddOutput(view, 0x7d3dc860e075cfefn, "infra9", ["http://127.0.0.1:24091"])).toBe(
      etcdctlOutput,
    )
  })

  it("is the same from the v2 members API", () => {
    const view = Either.getOrThrow(decodeV2MemberList(v2List, "394c6ee694e515e"))
    expect(memberAddOutput(view, 0x7d3dc860e075cfefn, "infra9", ["http://127.0.0.1:24091"])).toBe(
      etcdctlOutput,
    )
    expect(Either.isLeft(decodeV2MemberList(v2List, undefined))).toBe(true)
  })

  it("finds a member added before by its peer URLs", () => {
    const view = Either.getOrThrow(decodeV3MemberList(v3List))
    expect(memberWithPeerUrls(view, ["http://127.0.0.1:24091/"])?.name).toBe("")
    expect(memberWithPeerUrls(view, ["http://127.0.0.1:9"])).toBeUndefined()
  })

  it("reads the add answer", () => {
    const added = decodeV3MemberAdd(
      `{"header":{"cluster_id":"258049805938217310"},"member":{"ID":"9024589546728574959","peerURLs":["http://127.0.0.1:24091"]},"members":[]}`,
    )
    expect(Either.getOrThrow(added).added.id).toBe(0x7d3dc860e075cfefn)
    expect(Either.isLeft(decodeV3MemberAdd(`{"error":"etcdserver: unhealthy cluster"}`))).toBe(true)
  })

  it("quotes shell words only when needed", () => {
    expect(shellWord("m1=http://127.0.0.1:2380,m2=http://h:2380")).toBe(
      "m1=http://127.0.0.1:2380,m2=http://h:2380",
    )
    expect(shellWord("/tmp/a dir")).toBe("'/tmp/a dir'")
    expect(shellWord("it's")).toBe(`'it'\\''s'`)
  })
})

describe("join's arguments", () => {
  const readJoinArgv = (argv: ReadonlyArray<string>, env: Record<string, string>) =>
    Either.map(readCommandLine(joinCommand, argv, env), (line) => ({
      values: new Map([...line.settings].map(([name, setting]) => [name, setting.value])),
      etcdArgs: line.forEtcd,
    }))

  it("takes its own flags, leaves every other argument to etcd unchanged and in order", () => {
    const parsed = Either.getOrThrow(
      readJoinArgv(
        [
          "-name",
          "j1",
          "--discovery=http://d/t",
          "--discovery-fallback",
          "exit",
          "--heartbeat-interval",
          "50",
          "--enable-v2",
          "--proxy-refresh-interval",
          "1000",
          "-etcd-bin",
          "/opt/etcd",
          "--listen-client-urls",
          "http://127.0.0.1:2379",
          "--client-cert-auth",
          "--initial-cluster-token",
          "t",
          "--unknown-to-everyone",
          "v",
        ],
        {},
      ),
    )
    expect(Object.fromEntries(parsed.values)).toEqual({
      name: "j1",
      discovery: "http://d/t",
      "discovery-fallback": "exit",
      "proxy-refresh-interval": "1000",
      "etcd-bin": "/opt/etcd",
      "listen-client-urls": "http://127.0.0.1:2379",
      "client-cert-auth": "true",
    })
    expect(parsed.etcdArgs).toEqual([
      "-name",
      "j1",
      "--discovery=http://d/t",
      "--heartbeat-interval",
      "50",
      "--enable-v2",
      "--listen-client-urls",
      "http://127.0.0.1:2379",
      "--client-cert-auth",
      "--initial-cluster-token",
      "t",
      "--unknown-to-everyone",
      "v",
    ])
  })

  it("reads what it needs from ETCD_* when the flag is absent; both set is an error, as in etcd", () => {
    const parsed = Either.getOrThrow(
      readJoinArgv(["--name", "flag"], {
        ETCD_DISCOVERY: "http://d/t",
        ETCD_PROXY_FALLBACK: "exit",
      }),
    )
    expect(parsed.values.get("name")).toBe("flag")
    expect(parsed.values.get("discovery")).toBe("http://d/t")
    expect(parsed.values.get("discovery-fallback")).toBe("exit")
    expect(parsed.etcdArgs).toEqual(["--name", "flag"])
    const both = readJoinArgv(["--name", "flag", "--discovery", "http://d/t"], { ETCD_NAME: "env" })
    expect(Either.isLeft(both) && both.left.message).toBe(
      "--name and ETCD_NAME are both set; set only one of them",
    )
  })

  it("a flag of its own without a value, or no discovery URL, is a usage error", () => {
    expect(Either.isLeft(readJoinArgv(["--discovery"], {}))).toBe(true)
    const none = readJoinArgv(["--name", "a"], {})
    expect(Either.isLeft(none) && none.left.message).toContain(
      "join needs --discovery (or ETCD_DISCOVERY)",
    )
  })
})
