/** Decoding `/members` (SPEC §5.1) and the saved cluster file's format (SPEC §7). */
import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import {
  decodeClusterFile,
  decodeMembers,
  encodeClusterFile,
  isClusterId,
} from "../../src/domain/Member.js"

const decoded = (body: string) => {
  const result = decodeMembers(body)
  if (Either.isLeft(result)) throw new Error(`unexpected decode error: ${result.left}`)
  return result.right
}

describe("decodeMembers", () => {
  it("keeps every digit of ids above 2^53", () => {
    const members = decoded(
      '[{"id":10276657743932975437,"name":"infra1","peerURLs":["http://127.0.0.1:12380"],"clientURLs":["http://127.0.0.1:2379"]},' +
        '{"id": 18446744073709551615 ,"name":"infra2","peerURLs":["http://127.0.0.1:22380"],"clientURLs":["http://127.0.0.1:22379"]}]',
    )
    expect(members.map((m) => m.id)).toEqual(["10276657743932975437", "18446744073709551615"])
    expect(members[0]!.name).toBe("infra1")
    expect(members[0]!.peerURLs).toEqual(["http://127.0.0.1:12380"])
    expect(members[0]!.clientURLs).toEqual(["http://127.0.0.1:2379"])
    expect(members[0]!.isLearner).toBe(false)
  })

  it("leaves an id key inside a string value alone", () => {
    const members = decoded(
      '[{"name":"a,\\"id\\":5","id":9007199254740993,"peerURLs":["http://h:2380"],"clientURLs":[]}]',
    )
    expect(members[0]!.name).toBe('a,"id":5')
    expect(members[0]!.id).toBe("9007199254740993")
  })

  it("an unstarted member has no name and no client URLs", () => {
    const members = decoded('[{"id":12345678901234567890,"peerURLs":["http://10.0.0.4:2380"]}]')
    expect(members[0]!.name).toBe("")
    expect(members[0]!.clientURLs).toEqual([])
  })

  it("reads the learner flag", () => {
    const members = decoded(
      '[{"id":1,"name":"l","peerURLs":["http://h:2380"],"clientURLs":["http://h:2379"],"isLearner":true}]',
    )
    expect(members[0]!.isLearner).toBe(true)
  })

  it("says what is wrong with a bad body", () => {
    const notJson = decodeMembers("<html>")
    expect(Either.isLeft(notJson) && notJson.left).toContain("not JSON")
    const wrongShape = decodeMembers('{"members":[]}')
    expect(Either.isLeft(wrongShape) && wrongShape.left).toContain("unexpected shape")
    const noPeers = decodeMembers('[{"id":1,"name":"a"}]')
    expect(Either.isLeft(noPeers)).toBe(true)
    const badId = decodeMembers('[{"id":"x1","peerURLs":[]}]')
    expect(Either.isLeft(badId)).toBe(true)
    const fractional = decodeMembers('[{"id":1.5,"peerURLs":[]}]')
    expect(Either.isLeft(fractional)).toBe(true)
  })

  it("an empty list is a valid answer", () => {
    expect(decoded("[]")).toEqual([])
  })
})

describe("isClusterId", () => {
  it("accepts a non-zero hex uint64", () => {
    expect(isClusterId("cdf818194e3a8c32")).toBe(true)
    expect(isClusterId("CDF818194E3A8C32")).toBe(true)
    expect(isClusterId("1")).toBe(true)
  })

  it("refuses missing, empty, zero, too long and non-hex values", () => {
    for (const value of [undefined, "", "0", "0000", "cdf818194e3a8c321", "xyz", "12 34", "-1"]) {
      expect(isClusterId(value), String(value)).toBe(false)
    }
  })
})

describe("cluster file", () => {
  it("is etcd's compact JSON, sorted, without a trailing newline", () => {
    const text = encodeClusterFile([
      "http://10.0.0.3:2380",
      "http://10.0.0.1:2380",
      "https://a:2380",
    ])
    expect(text).toBe(
      '{"PeerURLs":["http://10.0.0.1:2380","http://10.0.0.3:2380","https://a:2380"]}',
    )
  })

  it("does not reorder the caller's list", () => {
    const peers = ["http://b:2380", "http://a:2380"]
    encodeClusterFile(peers)
    expect(peers).toEqual(["http://b:2380", "http://a:2380"])
  })

  it("decodes what it encodes, and what etcd writes", () => {
    const peers = ["http://10.0.0.1:2380", "http://10.0.0.2:2380"]
    expect(decodeClusterFile(encodeClusterFile(peers))).toEqual(Either.right(peers))
    expect(decodeClusterFile('{"PeerURLs":["http://127.0.0.1:12380"]}\n')).toEqual(
      Either.right(["http://127.0.0.1:12380"]),
    )
  })

  it("a broken file is an error, not an empty cluster", () => {
    expect(Either.isLeft(decodeClusterFile(""))).toBe(true)
    expect(Either.isLeft(decodeClusterFile('{"PeerURLs":"http://a:2380"}'))).toBe(true)
    expect(Either.isLeft(decodeClusterFile('{"peers":[]}'))).toBe(true)
  })
})
