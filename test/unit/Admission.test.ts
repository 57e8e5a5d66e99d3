/** The one admission decision every front uses (SPEC §11), in its fixed order. */
import { describe, expect, it } from "@effect/vitest"
import {
  admit,
  firstEndpoint,
  isWatch,
  noLoopClaim,
  overFairShare,
  type Incoming,
  type Situation,
} from "../../src/domain/Admission.js"

const calm: Situation = {
  mode: "readwrite",
  cors: false,
  discovery: { _tag: "Complete" },
  maxRequestBytes: 1_572_864,
  inFlight: 0,
  inFlightLimit: 16_384,
  clientInFlight: 0,
  activeClients: 1,
}

const get = (target: string, more: Partial<Incoming> = {}): Incoming => ({
  method: "GET",
  target,
  grpc: false,
  contentLength: undefined,
  loop: noLoopClaim,
  ...more,
})

const tagOf = (request: Incoming, situation: Partial<Situation> = {}) => {
  const admission = admit(request, { ...calm, ...situation })
  return admission._tag === "Refuse" ? admission.refusal._tag : admission._tag
}

describe("admit", () => {
  it("forwards an ordinary request, and tells watches apart", () => {
    expect(admit(get("/v2/keys/a"), calm)).toEqual({ _tag: "Forward", watch: false })
    expect(admit(get("/v2/keys/a?wait=true"), calm)).toEqual({ _tag: "Forward", watch: true })
    expect(admit(get("/v3/watch", { method: "POST" }), calm)).toEqual({
      _tag: "Forward",
      watch: true,
    })
  })

  it("answers the proxy's own paths first, whatever else holds", () => {
    const busy: Partial<Situation> = {
      mode: "readonly",
      discovery: { _tag: "Pending", registered: 0, size: null },
      inFlight: 16_384,
    }
    expect(admit(get("/v2/config/local/proxy?x=1"), { ...calm, ...busy })).toEqual({
      _tag: "Own",
      endpoint: "config",
    })
    expect(admit(get("/metrics"), { ...calm, ...busy })).toEqual({
      _tag: "Own",
      endpoint: "metrics",
    })
    expect(admit(get("/metrics", { method: "PUT" }), { ...calm, ...busy })._tag).toBe("Own")
    // A gRPC call is never one of the proxy's own paths.
    expect(tagOf(get("/metrics", { grpc: true, method: "POST" }), busy)).toBe("WriteForbidden")
  })

  it("a genuine loop comes before the mode and names the endpoint to exclude", () => {
    const admission = admit(
      get("/v2/keys/a", {
        method: "PUT",
        loop: {
          _tag: "Genuine",
          endpointKey: "http://10.0.0.1:2379",
          endpointUrl: "http://10.0.0.1:2379",
        },
      }),
      { ...calm, mode: "readonly" },
    )
    expect(admission).toMatchObject({
      _tag: "Refuse",
      refusal: { _tag: "LoopDetected", via: "http://10.0.0.1:2379" },
      excludeEndpoint: "http://10.0.0.1:2379",
    })
  })

  it("a forged loop claim is refused and excludes nothing", () => {
    const admission = admit(get("/v2/keys/a", { loop: { _tag: "Forged" } }), calm)
    expect(admission).toMatchObject({ _tag: "Refuse", refusal: { _tag: "LoopDetected" } })
    expect(admission._tag === "Refuse" && admission.excludeEndpoint).toBeUndefined()
  })

  it("a CORS pre-flight is the proxy's own answer only with --cors, also when read-only", () => {
    expect(tagOf(get("/v2/keys/a", { method: "OPTIONS" }), { cors: true, mode: "readonly" })).toBe(
      "Preflight",
    )
    expect(tagOf(get("/v2/keys/a", { method: "OPTIONS" }))).toBe("Forward")
    expect(tagOf(get("/v2/keys/a", { method: "OPTIONS" }), { mode: "readonly" })).toBe(
      "WriteForbidden",
    )
  })

  it("the mode comes before discovery and the limits", () => {
    const situation: Partial<Situation> = {
      mode: "readonly",
      discovery: { _tag: "Pending", registered: 1, size: 3 },
      inFlight: 16_384,
    }
    expect(tagOf(get("/v2/keys/a", { method: "PUT", contentLength: 10 ** 9 }), situation)).toBe(
      "WriteForbidden",
    )
    expect(
      tagOf(get("/etcdserverpb.KV/Put", { method: "POST", grpc: true }), { mode: "readonly" }),
    ).toBe("WriteForbidden")
    expect(
      tagOf(get("/etcdserverpb.KV/Range", { method: "POST", grpc: true }), { mode: "readonly" }),
    ).toBe("Forward")
  })

  it("discovery pending comes before the limits", () => {
    const admission = admit(get("/v2/keys/a", { contentLength: 10 ** 9 }), {
      ...calm,
      discovery: { _tag: "Pending", registered: 1, size: 3 },
    })
    expect(admission).toMatchObject({
      _tag: "Refuse",
      refusal: { _tag: "DiscoveryPending", registered: 1, size: 3 },
    })
  })

  it("a declared body over --max-request-bytes is refused before it is read", () => {
    expect(tagOf(get("/v2/keys/a", { method: "PUT", contentLength: 1_572_865 }))).toBe(
      "RequestTooLarge",
    )
    expect(tagOf(get("/v2/keys/a", { method: "PUT", contentLength: 1_572_864 }))).toBe("Forward")
  })

  it("the in-flight limit refuses everyone once reached", () => {
    expect(
      tagOf(get("/v2/keys/a"), { inFlight: 16_384, clientInFlight: 0, activeClients: 5 }),
    ).toBe("Overloaded")
  })
})

describe("overFairShare", () => {
  it("below half the limit, one client may hold everything it asks for", () => {
    expect(
      overFairShare({ ...calm, inFlight: 8_000, clientInFlight: 8_000, activeClients: 1 }),
    ).toBe(false)
    expect(
      overFairShare({ ...calm, inFlight: 8_000, clientInFlight: 8_000, activeClients: 4 }),
    ).toBe(false)
  })

  it("under pressure, a client over its share is refused and others are not", () => {
    const pressed = { ...calm, inFlight: 12_000, activeClients: 2 }
    expect(overFairShare({ ...pressed, clientInFlight: 11_990 })).toBe(true)
    expect(overFairShare({ ...pressed, clientInFlight: 10 })).toBe(false)
    // Alone, a client's share is the whole limit.
    expect(overFairShare({ ...pressed, activeClients: 1, clientInFlight: 12_000 })).toBe(false)
  })
})

describe("isWatch and firstEndpoint", () => {
  it("long polls, streams, gateway and gRPC watches are watches; other reads are not", () => {
    expect(isWatch("GET", "/v2/keys/a?wait=true&stream=true", false)).toBe(true)
    expect(isWatch("POST", "/v3beta/watch", false)).toBe(true)
    expect(isWatch("POST", "/etcdserverpb.Watch/Watch", true)).toBe(true)
    expect(isWatch("GET", "/v2/keys/a?recursive=true", false)).toBe(false)
    expect(isWatch("POST", "/v3/kv/range", false)).toBe(false)
    expect(isWatch("POST", "/etcdserverpb.KV/Range", true)).toBe(false)
  })

  it("sticky always starts at the first endpoint; round-robin turns", () => {
    expect([0, 1, 2, 3].map((turn) => firstEndpoint("sticky", 3, turn))).toEqual([0, 0, 0, 0])
    expect([0, 1, 2, 3].map((turn) => firstEndpoint("round-robin", 3, turn))).toEqual([0, 1, 2, 0])
    expect(firstEndpoint("round-robin", 0, 5)).toBe(0)
  })
})
