/** The headers the proxy adds (SPEC §3.1, §5.6): X-Forwarded-For and Via. */
import { describe, expect, it } from "@effect/vitest"
import {
  appendForwardedFor,
  appendVia,
  clientAddress,
  ownViaNonce,
  viaEntry,
} from "../../src/domain/Headers.js"

describe("X-Forwarded-For", () => {
  it("appends the client address to what is there", () => {
    expect(appendForwardedFor(undefined, "10.0.0.9")).toBe("10.0.0.9")
    expect(appendForwardedFor("", "10.0.0.9")).toBe("10.0.0.9")
    expect(appendForwardedFor("1.2.3.4", "10.0.0.9")).toBe("1.2.3.4, 10.0.0.9")
    expect(appendForwardedFor("1.2.3.4, 5.6.7.8", "10.0.0.9")).toBe("1.2.3.4, 5.6.7.8, 10.0.0.9")
  })

  it("writes an IPv4-mapped client address as IPv4 and keeps real IPv6", () => {
    expect(clientAddress("::ffff:127.0.0.1")).toBe("127.0.0.1")
    expect(clientAddress("::ffff:10.1.2.3")).toBe("10.1.2.3")
    expect(clientAddress("::1")).toBe("::1")
    expect(clientAddress("fe80::1")).toBe("fe80::1")
    expect(clientAddress("192.168.1.1")).toBe("192.168.1.1")
    expect(clientAddress(undefined)).toBe("unknown")
  })
})

describe("Via", () => {
  const id = "etcd-proxy-0123456789ab"

  it("our entry names the endpoint the request was sent to and its nonce", () => {
    const entry = viaEntry(id, "http://10.0.0.1:2379", "n0nce")
    expect(entry).toBe("1.1 etcd-proxy-0123456789ab (http://10.0.0.1:2379 n0nce)")
    expect(appendVia(undefined, entry)).toBe(entry)
    expect(appendVia("", entry)).toBe(entry)
    expect(appendVia("1.1 other", entry)).toBe(`1.1 other, ${entry}`)
  })

  it("ownViaNonce finds our own entry's nonce among others", () => {
    expect(ownViaNonce(viaEntry(id, "http://10.0.0.1:2379", "abc"), id)).toBe("abc")
    const chain = [
      "1.1 etcd-proxy-ffffffffffff (http://10.0.0.5:2379 zzz)",
      viaEntry(id, "http://[::1]:2379", "Q-_9"),
      "1.1 etcd-proxy-eeeeeeeeeeee (http://10.0.0.6:2379 yyy)",
    ].join(", ")
    expect(ownViaNonce(chain, id)).toBe("Q-_9")
  })

  it("ownViaNonce is undefined when our id is absent", () => {
    expect(ownViaNonce(undefined, id)).toBeUndefined()
    expect(ownViaNonce("", id)).toBeUndefined()
    expect(ownViaNonce("1.1 etcd-proxy-ffffffffffff (http://10.0.0.1:2379 a)", id)).toBeUndefined()
  })

  it("our id without a readable nonce is a claim with no nonce", () => {
    expect(ownViaNonce(`1.1 ${id}`, id)).toBe("")
    expect(ownViaNonce(`1.1 ${id} (http://10.0.0.1:2379`, id)).toBe("")
    expect(ownViaNonce(`1.1 ${id} (http://10.0.0.1:2379)`, id)).toBe("")
  })
})
