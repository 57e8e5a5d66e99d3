/** The answers the proxy makes itself (SPEC §3.5, §4, §5.6, §6.2): status and body byte for byte. */
import { describe, expect, it } from "@effect/vitest"
import {
  BadRequestTarget,
  DiscoveryPending,
  EndpointsExhausted,
  httpAnswer,
  LoopDetected,
  Overloaded,
  RequestTooLarge,
  SentNotRetried,
  WriteForbidden,
  ZeroEndpoints,
} from "../../src/domain/Errors.js"

describe("httpAnswer", () => {
  it("503 zero endpoints, as etcd's", () => {
    expect(httpAnswer(new ZeroEndpoints())).toEqual({
      status: 503,
      body: '{"message":"httpproxy: zero endpoints currently available"}',
    })
  })

  it("502 when every tried endpoint failed, as etcd's", () => {
    expect(httpAnswer(new EndpointsExhausted({ tried: 2 }))).toEqual({
      status: 502,
      body: '{"message":"httpproxy: unable to get response from 2 endpoint(s)"}',
    })
  })

  it("502 for a sent request that is not retried", () => {
    expect(
      httpAnswer(new SentNotRetried({ endpoint: "http://127.0.0.1:2379", method: "PUT" })),
    ).toEqual({
      status: 502,
      body: '{"message":"httpproxy: http://127.0.0.1:2379 failed after the request was sent; PUT not retried"}',
    })
  })

  it("501 for a refused write", () => {
    expect(httpAnswer(new WriteForbidden({ method: "POST", path: "/v3/kv/put" }))).toEqual({
      status: 501,
      body: '{"message":"httpproxy: read-only proxy refuses POST /v3/kv/put"}',
    })
  })

  it("508 for a forwarding loop", () => {
    expect(httpAnswer(new LoopDetected({ via: "http://10.0.0.1:2379" }))).toEqual({
      status: 508,
      body: '{"message":"httpproxy: forwarding loop detected via http://10.0.0.1:2379"}',
    })
  })

  it("503 while discovery is pending, before and after the size is known", () => {
    expect(httpAnswer(new DiscoveryPending({ registered: 0, size: null }))).toEqual({
      status: 503,
      body: '{"message":"httpproxy: discovery pending: waiting for the discovery service"}',
    })
    expect(httpAnswer(new DiscoveryPending({ registered: 1, size: 3 }))).toEqual({
      status: 503,
      body: '{"message":"httpproxy: discovery pending: 1 of 3 members registered"}',
    })
    expect(httpAnswer(new DiscoveryPending({ registered: 0, size: 3 })).body).toBe(
      '{"message":"httpproxy: discovery pending: 0 of 3 members registered"}',
    )
  })

  it("413, 400 and overload answers are JSON objects with a message", () => {
    for (const [refusal, status] of [
      [new RequestTooLarge({ limit: 1_572_864 }), 413],
      [new BadRequestTarget({ target: "http://elsewhere/" }), 400],
      [new Overloaded({ limit: 10 }), 503],
    ] as const) {
      const answer = httpAnswer(refusal)
      expect(answer.status).toBe(status)
      const body = JSON.parse(answer.body) as Record<string, unknown>
      expect(Object.keys(body)).toEqual(["message"])
      expect(body["message"]).toMatch(/^httpproxy: /)
    }
    expect(httpAnswer(new RequestTooLarge({ limit: 1_572_864 })).body).toContain("1572864")
  })
})
