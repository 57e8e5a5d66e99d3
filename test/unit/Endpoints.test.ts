/** The endpoint table (SPEC §5.3, §5.4, §5.6): refresh merging, state transitions, the shuffle. */
import { describe, expect, it } from "@effect/vitest"
import { EndpointTable, fisherYates, tableFromMembers } from "../../src/domain/Endpoints.js"
import { Member, type MemberId } from "../../src/domain/Member.js"

const member = (
  name: string,
  clientURLs: ReadonlyArray<string>,
  options: { readonly isLearner?: boolean } = {},
) =>
  new Member({
    id: String(1000 + name.length) as MemberId,
    name,
    peerURLs: [`http://${name}:2380`],
    clientURLs,
    isLearner: options.isLearner ?? false,
  })

const notOwn = () => false

const states = (table: EndpointTable) => table.all.map((e) => `${e.key} ${e.state}`)

/** A small deterministic generator (mulberry32), so the statistics below never flake. */
const seeded = (seed: number) => {
  let a = seed >>> 0
  return (n: number): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    const unit = ((t ^ (t >>> 14)) >>> 0) / 4294967296
    return Math.floor(unit * n)
  }
}

describe("tableFromMembers", () => {
  const a = member("a", ["http://10.0.0.1:2379"])
  const b = member("b", ["http://10.0.0.2:2379"])
  const c = member("c", ["http://10.0.0.3:2379"])

  it("builds one available endpoint per client URL from an empty table", () => {
    const table = tableFromMembers([a, b], EndpointTable.empty, notOwn)
    expect(states(table)).toEqual([
      "http://10.0.0.1:2379 available",
      "http://10.0.0.2:2379 available",
    ])
    expect(table.available.map((e) => e.member)).toEqual(["a", "b"])
    expect(table.members).toEqual([a, b])
  })

  it("keeps the order of staying endpoints, appends new ones and drops removed ones", () => {
    const first = tableFromMembers([a, b, c], EndpointTable.empty, notOwn)
    const reordered = first.reorder([first.all[2]!, first.all[0]!, first.all[1]!])
    const d = member("dd", ["http://10.0.0.4:2379"])
    const next = tableFromMembers([d, a, c], reordered, notOwn)
    expect(next.keys).toEqual([
      "http://10.0.0.3:2379",
      "http://10.0.0.1:2379",
      "http://10.0.0.4:2379",
    ])
    expect(next.get("http://10.0.0.2:2379")).toBeUndefined()
  })

  it("keeps the failure state of staying endpoints", () => {
    const first = tableFromMembers([a, b], EndpointTable.empty, notOwn).markFailed(
      "http://10.0.0.2:2379",
    )
    const next = tableFromMembers([a, b, c], first, notOwn)
    expect(states(next)).toEqual([
      "http://10.0.0.1:2379 available",
      "http://10.0.0.2:2379 failed",
      "http://10.0.0.3:2379 available",
    ])
    expect(next.available.map((e) => e.member)).toEqual(["a", "c"])
  })

  it("an endpoint that left and came back starts available", () => {
    const failed = tableFromMembers([a, b], EndpointTable.empty, notOwn).markFailed(
      "http://10.0.0.2:2379",
    )
    const without = tableFromMembers([a], failed, notOwn)
    expect(tableFromMembers([a, b], without, notOwn).get("http://10.0.0.2:2379")?.state).toBe(
      "available",
    )
  })

  it("a loop exclusion does not survive a refresh", () => {
    const excluded = tableFromMembers([a, b], EndpointTable.empty, notOwn).excludeLoop(
      "http://10.0.0.1:2379",
    )
    expect(excluded.get("http://10.0.0.1:2379")?.state).toBe("excluded-loop")
    expect(tableFromMembers([a, b], excluded, notOwn).get("http://10.0.0.1:2379")?.state).toBe(
      "available",
    )
  })

  it("skips learners", () => {
    const learner = member("learner", ["http://10.0.0.9:2379"], { isLearner: true })
    const table = tableFromMembers([a, learner], EndpointTable.empty, notOwn)
    expect(table.keys).toEqual(["http://10.0.0.1:2379"])
  })

  it("skips unstarted members and URLs that are not http(s)", () => {
    const unstarted = member("u", [])
    const odd = member("odd", ["unix://10.0.0.7:2379", "not a url", "http://10.0.0.8:2379"])
    const table = tableFromMembers([unstarted, odd], EndpointTable.empty, notOwn)
    expect(table.keys).toEqual(["http://10.0.0.8:2379"])
  })

  it("dedupes client URLs by scheme, host and port", () => {
    const twice = member("a", ["http://10.0.0.1:2379", "http://10.0.0.1:2379/"])
    const again = member("b", ["HTTP://10.0.0.1:2379", "https://10.0.0.1:2379"])
    const table = tableFromMembers([twice, again], EndpointTable.empty, notOwn)
    expect(table.keys).toEqual(["http://10.0.0.1:2379", "https://10.0.0.1:2379"])
    expect(table.get("http://10.0.0.1:2379")?.member).toBe("a")
    expect(table.get("http://10.0.0.1:2379")?.url).toBe("http://10.0.0.1:2379")
  })

  it("a member with several client URLs gives one endpoint each", () => {
    const multi = member("m", ["http://10.0.0.1:2379", "http://10.0.0.1:4001"])
    const table = tableFromMembers([multi], EndpointTable.empty, notOwn)
    expect(table.keys).toEqual(["http://10.0.0.1:2379", "http://10.0.0.1:4001"])
    expect(table.all.every((e) => e.member === "m")).toBe(true)
  })

  it("an endpoint pointing at our own listener is excluded, not available", () => {
    const own = (url: URL) => url.host === "10.0.0.2:2379"
    const table = tableFromMembers([a, b], EndpointTable.empty, own)
    expect(table.get("http://10.0.0.2:2379")?.state).toBe("excluded-loop")
    expect(table.available.map((e) => e.key)).toEqual(["http://10.0.0.1:2379"])
    // It stays excluded on every refresh, whatever state it had.
    expect(tableFromMembers([a, b], table, own).get("http://10.0.0.2:2379")?.state).toBe(
      "excluded-loop",
    )
  })
})

describe("EndpointTable transitions", () => {
  const table = tableFromMembers(
    [
      member("a", ["http://10.0.0.1:2379"]),
      member("bb", ["http://10.0.0.2:2379"]),
      member("ccc", ["http://10.0.0.3:2379"]),
    ],
    EndpointTable.empty,
    notOwn,
  )
  const [k1, k2, k3] = table.keys as [string, string, string]

  it("markFailed takes an available endpoint out of the available list", () => {
    const failed = table.markFailed(k2)
    expect(failed.get(k2)?.state).toBe("failed")
    expect(failed.available.map((e) => e.key)).toEqual([k1, k3])
    expect(table.get(k2)?.state).toBe("available")
  })

  it("markAvailable brings a failed endpoint back in its place", () => {
    const back = table.markFailed(k2).markAvailable(k2)
    expect(back.available.map((e) => e.key)).toEqual([k1, k2, k3])
  })

  it("markAvailable does not lift a loop exclusion", () => {
    const excluded = table.excludeLoop(k1)
    expect(excluded.markAvailable(k1)).toBe(excluded)
    expect(excluded.markAvailable(k1).get(k1)?.state).toBe("excluded-loop")
  })

  it("excludeLoop applies to available and failed endpoints; markFailed leaves it", () => {
    expect(table.excludeLoop(k1).get(k1)?.state).toBe("excluded-loop")
    expect(table.markFailed(k1).excludeLoop(k1).get(k1)?.state).toBe("excluded-loop")
    const excluded = table.excludeLoop(k1)
    expect(excluded.markFailed(k1)).toBe(excluded)
  })

  it("a transition that changes nothing returns the same table", () => {
    const failed = table.markFailed(k1)
    expect(failed.markFailed(k1)).toBe(failed)
    expect(table.markAvailable(k1)).toBe(table)
    expect(table.markFailed("http://10.9.9.9:2379")).toBe(table)
  })

  it("reorder keeps states and ignores unknown endpoints", () => {
    const failed = table.markFailed(k2)
    const stranger = {
      key: "http://x:1",
      url: "http://x:1",
      member: "x",
      state: "available",
    } as const
    const reordered = failed.reorder([failed.all[2]!, stranger, table.all[1]!, failed.all[0]!])
    expect(reordered.keys).toEqual([k3, k2, k1])
    expect(reordered.get(k2)?.state).toBe("failed")
    expect(reordered.available.map((e) => e.key)).toEqual([k3, k1])
  })
})

describe("fisherYates", () => {
  it("returns a permutation and leaves its input alone", () => {
    const items = ["a", "b", "c", "d", "e", "f", "g"]
    const next = seeded(7)
    for (let run = 0; run < 200; run++) {
      const out = fisherYates(items, next)
      expect(out).toHaveLength(items.length)
      expect([...out].sort()).toEqual(items)
    }
    expect(items).toEqual(["a", "b", "c", "d", "e", "f", "g"])
  })

  it("is deterministic for a given random source", () => {
    const items = [1, 2, 3, 4, 5, 6, 7, 8]
    expect(fisherYates(items, seeded(42))).toEqual(fisherYates(items, seeded(42)))
    expect(fisherYates([], seeded(1))).toEqual([])
    expect(fisherYates(["only"], seeded(1))).toEqual(["only"])
  })

  it("gives every item every position about equally often", () => {
    const n = 5
    const runs = 50_000
    const items = Array.from({ length: n }, (_, i) => i)
    const counts = Array.from({ length: n }, () => Array<number>(n).fill(0))
    const next = seeded(2024)
    for (let run = 0; run < runs; run++) {
      fisherYates(items, next).forEach((item, position) => counts[item]![position]!++)
    }
    const expected = runs / n
    let chiSquare = 0
    for (const row of counts)
      for (const count of row) chiSquare += (count - expected) ** 2 / expected
    // 25 cells, 16 degrees of freedom: p = 0.001 is at 39.3. A biased shuffle (e.g. `nextInt(n)`
    // for every position) lands in the thousands.
    expect(chiSquare).toBeLessThan(39.3)
  })

  it("gives each of the n! orders about equally often", () => {
    const runs = 60_000
    const seen = new Map<string, number>()
    const next = seeded(99)
    for (let run = 0; run < runs; run++) {
      const key = fisherYates(["a", "b", "c", "d"], next).join("")
      seen.set(key, (seen.get(key) ?? 0) + 1)
    }
    expect(seen.size).toBe(24)
    const expected = runs / 24
    let chiSquare = 0
    for (const count of seen.values()) chiSquare += (count - expected) ** 2 / expected
    // 23 degrees of freedom: p = 0.001 is at 49.7.
    expect(chiSquare).toBeLessThan(49.7)
  })
})
