/** Judging one peer's `/members` answer against the trusted list (SPEC §5.3), as pure functions. */
import { describe, expect, it } from "@effect/vitest"
import {
  confirms,
  judgeAnswer,
  peersToAsk,
  samePeerUrl,
  type Judgement,
  type Plausible,
  type TrustedList,
} from "../../src/domain/MemberAnswer.js"
import { Member, type MemberId } from "../../src/domain/Member.js"
import { clientUrl, member, peerUrl } from "./support/fakeCluster.js"

const cluster = "cdf818194e3a8c32"
const trusted: TrustedList = { clusterId: cluster, members: [member(1), member(2), member(3)] }

const judge = (
  peer: string,
  members: ReadonlyArray<Member>,
  list: TrustedList = trusted,
  clusterId = cluster,
): Judgement => judgeAnswer({ peer, clusterId, members }, list, (url) => samePeerUrl(url, peer))

const plausible = (judgement: Judgement): Plausible => {
  if (judgement._tag !== "Plausible") throw new Error(`refused: ${judgement.reason}`)
  return judgement
}

describe("judgeAnswer", () => {
  it("refuses an empty list (etcd's null)", () => {
    expect(judge(peerUrl(1), [])).toMatchObject({ _tag: "Refused", kind: "empty" })
    expect(judge(peerUrl(1), [], { clusterId: undefined, members: [] })).toMatchObject({
      _tag: "Refused",
    })
  })

  it("refuses a list that does not include the member asked", () => {
    const judgement = judge(peerUrl(1), [member(2), member(3, { clientURLs: [] })])
    expect(judgement).toMatchObject({ _tag: "Refused", kind: "not-self" })
    expect(judgement._tag === "Refused" && judgement.reason).toBe(
      `its member list (m2, m3) does not include the member at ${peerUrl(1)}`,
    )
  })

  it("takes a full list as it is", () => {
    const judgement = plausible(judge(peerUrl(2), [member(1), member(2), member(3)]))
    expect(judgement.answering.name).toBe("m2")
    expect(judgement.lost).toEqual([])
    expect(judgement.complete).toBe(true)
    expect(judgement.clientUrlCount).toBe(3)
  })

  it("fills missing client URLs and names from the trusted list, never the other way", () => {
    const bare = (n: number) =>
      new Member({ id: member(n).id, name: "", peerURLs: [peerUrl(n)], clientURLs: [] })
    const judgement = plausible(judge(peerUrl(1), [bare(1), bare(2), bare(3)]))
    expect(judgement.members.map((m) => [m.name, m.clientURLs])).toEqual([
      ["m1", [clientUrl(1)]],
      ["m2", [clientUrl(2)]],
      ["m3", [clientUrl(3)]],
    ])
    expect(judgement.complete).toBe(true)
    const moved = member(2, { clientURLs: ["http://10.0.0.22:2379"] })
    const changed = plausible(judge(peerUrl(1), [member(1), moved, member(3)]))
    expect(changed.members[1]!.clientURLs).toEqual(["http://10.0.0.22:2379"])
  })

  it("a member never known with no client URLs makes the answer incomplete", () => {
    const judgement = plausible(
      judge(peerUrl(1), [member(1), member(2), member(3), member(4, { clientURLs: [] })]),
    )
    expect(judgement.lost).toEqual([])
    expect(judgement.complete).toBe(false)
    expect(judgement.clientUrlCount).toBe(3)
  })

  it("names the trusted members an answer leaves out", () => {
    const judgement = plausible(judge(peerUrl(1), [member(1), member(4)]))
    expect(judgement.lost.map((m) => m.name)).toEqual(["m2", "m3"])
  })

  it("an answer from another cluster loses every trusted member", () => {
    const judgement = plausible(judge(peerUrl(1), trusted.members, trusted, "aaaa"))
    expect(judgement.lost).toHaveLength(3)
  })

  it("nothing is lost before a first list", () => {
    const first = { clusterId: undefined, members: [] }
    expect(plausible(judge(peerUrl(1), [member(1)], first)).lost).toEqual([])
  })

  it("keeps ids above 2^53 apart", () => {
    const big = (id: string, n: number) =>
      new Member({
        id: id as MemberId,
        name: `b${n}`,
        peerURLs: [peerUrl(n)],
        clientURLs: [clientUrl(n)],
      })
    const list = {
      clusterId: cluster,
      members: [big("18446744073709551614", 1), big("18446744073709551615", 2)],
    }
    const judgement = plausible(judge(peerUrl(1), [big("18446744073709551614", 1)], list))
    expect(judgement.lost.map((m) => m.id)).toEqual(["18446744073709551615"])
  })
})

describe("confirms", () => {
  it("needs a different member, the same cluster and the same members", () => {
    const fromOne = plausible(judge(peerUrl(1), [member(1), member(2)]))
    const fromTwo = plausible(judge(peerUrl(2), [member(2), member(1)]))
    expect(confirms(fromOne, fromTwo)).toBe(true)
    expect(confirms(fromOne, fromOne)).toBe(false)
    const other = plausible(judge(peerUrl(2), [member(1), member(2), member(4)]))
    expect(confirms(fromOne, other)).toBe(false)
    const otherCluster = plausible(judge(peerUrl(2), [member(1), member(2)], trusted, "aaaa"))
    expect(confirms(fromOne, otherCluster)).toBe(false)
  })
})

describe("peer URLs", () => {
  it("compare by scheme, host and port, with default ports and case ignored", () => {
    expect(samePeerUrl("http://10.0.0.1:2380", "http://10.0.0.1:2380/")).toBe(true)
    expect(samePeerUrl("http://Node1:80", "http://node1")).toBe(true)
    expect(samePeerUrl("https://[::1]:443", "https://[0:0:0:0:0:0:0:1]")).toBe(true)
    expect(samePeerUrl("http://10.0.0.1:2380", "https://10.0.0.1:2380")).toBe(false)
    expect(samePeerUrl("http://10.0.0.1:2380", "http://10.0.0.1:2381")).toBe(false)
    expect(samePeerUrl("not a url", "not a url")).toBe(false)
  })

  it("a refresh asks the source's peers and every trusted member's, once each, sorted", () => {
    expect(
      peersToAsk(
        [peerUrl(3), "http://10.0.0.9:2380/"],
        [member(2), member(1), member(3, { clientURLs: [] })],
      ),
    ).toEqual([peerUrl(1), peerUrl(2), peerUrl(3), "http://10.0.0.9:2380"])
  })
})
