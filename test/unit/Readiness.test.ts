/** Readiness (SPEC §8.6): what `/readyz` and the metrics listener's `/health` answer. */
import { describe, expect, it } from "@effect/vitest"
import { EndpointTable, tableFromMembers } from "../../src/domain/Endpoints.js"
import { Member, type MemberId } from "../../src/domain/Member.js"
import { healthBody, readiness } from "../../src/domain/Readiness.js"

const member = (name: string, clientUrl: string) =>
  new Member({
    id: String(1000 + name.length) as MemberId,
    name,
    peerURLs: [`http://${name}:2380`],
    clientURLs: [clientUrl],
    isLearner: false,
  })

const table = tableFromMembers(
  [member("a", "http://10.0.0.1:2379"), member("bb", "http://10.0.0.2:2379")],
  EndpointTable.empty,
  () => false,
)
const complete = { _tag: "Complete" } as const

describe("readiness", () => {
  it("ready while one endpoint is available and discovery is complete", () => {
    const oneLeft = table.markFailed("http://10.0.0.1:2379")
    expect(readiness(oneLeft, complete)).toEqual({ ready: true })
    expect(healthBody(readiness(oneLeft, complete))).toBe('{"health":"true"}')
  })

  it("not ready when every endpoint failed or loops, with the counts", () => {
    const none = table.markFailed("http://10.0.0.1:2379").excludeLoop("http://10.0.0.2:2379")
    const state = readiness(none, complete)
    expect(state).toEqual({
      ready: false,
      reason: "zero endpoints currently available (1 failed, 1 excluded as forwarding loops)",
    })
    expect(JSON.parse(healthBody(state))).toEqual({
      health: "false",
      reason: state.ready ? "" : state.reason,
    })
  })

  it("not ready before any member list arrived", () => {
    expect(readiness(EndpointTable.empty, complete)).toEqual({
      ready: false,
      reason: "no member client URL known yet",
    })
  })

  it("not ready while discovery is pending, whatever the table says", () => {
    expect(readiness(table, { _tag: "Pending", registered: 1, size: 3 })).toEqual({
      ready: false,
      reason: "discovery pending: 1 of 3 members registered",
    })
    expect(readiness(table, { _tag: "Pending", registered: 0, size: null })).toEqual({
      ready: false,
      reason: "discovery pending: waiting for the discovery service",
    })
  })
})
