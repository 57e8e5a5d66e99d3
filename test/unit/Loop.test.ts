/** Loop recognition (SPEC §5.6): a member client URL that would reach one of our own listeners. */
import { describe, expect, it } from "@effect/vitest"
import { normalizeHost, pointsAtListener, type OwnAddresses } from "../../src/domain/Loop.js"

const own = (
  listeners: ReadonlyArray<string>,
  local: ReadonlyArray<string> = [],
): OwnAddresses => ({
  listeners: listeners.map((l) => new URL(l)),
  local,
})

const points = (addresses: OwnAddresses, url: string, resolved?: ReadonlyArray<string>) =>
  pointsAtListener(addresses, new URL(url), resolved)

const machine = ["127.0.0.1", "::1", "10.1.2.3", "fe80::a00:27ff:fe4e:66a1"]

describe("pointsAtListener", () => {
  describe("a loopback listener on 127.0.0.1", () => {
    const addresses = own(["http://127.0.0.1:2379"], machine)

    it("is reached by its own address and by localhost", () => {
      expect(points(addresses, "http://127.0.0.1:2379")).toBe(true)
      expect(points(addresses, "http://localhost:2379")).toBe(true)
      expect(points(addresses, "http://LOCALHOST:2379/")).toBe(true)
      expect(points(addresses, "https://127.0.0.1:2379")).toBe(true)
    })

    it("is reached by the same address in IPv4-mapped IPv6 form", () => {
      expect(points(addresses, "http://[::ffff:127.0.0.1]:2379")).toBe(true)
    })

    it("is not reached by another loopback address, another host or another port", () => {
      expect(points(addresses, "http://127.0.0.2:2379")).toBe(false)
      expect(points(addresses, "http://[::1]:2379")).toBe(false)
      expect(points(addresses, "http://10.1.2.3:2379")).toBe(false)
      expect(points(addresses, "http://127.0.0.1:2380")).toBe(false)
      expect(points(addresses, "http://localhost:22379")).toBe(false)
    })
  })

  describe("a loopback listener on [::1]", () => {
    const addresses = own(["http://[::1]:2379"], machine)

    it("is reached by ::1 and localhost, not by 127.0.0.1", () => {
      expect(points(addresses, "http://[::1]:2379")).toBe(true)
      expect(points(addresses, "http://[0:0:0:0:0:0:0:1]:2379")).toBe(true)
      expect(points(addresses, "http://localhost:2379")).toBe(true)
      expect(points(addresses, "http://127.0.0.1:2379")).toBe(false)
    })
  })

  describe("a listener on localhost", () => {
    const addresses = own(["http://localhost:2379"], machine)

    it("is reached by localhost and the loopback addresses", () => {
      expect(points(addresses, "http://localhost:2379")).toBe(true)
      expect(points(addresses, "http://127.0.0.1:2379")).toBe(true)
      expect(points(addresses, "http://[::1]:2379")).toBe(true)
    })

    it("is not reached by an interface address or another port", () => {
      expect(points(addresses, "http://10.1.2.3:2379")).toBe(false)
      expect(points(addresses, "http://localhost:2380")).toBe(false)
    })
  })

  describe("a wildcard listener", () => {
    const v4 = own(["http://0.0.0.0:2379"], machine)
    const v6 = own(["http://[::]:2379"], machine)

    it("is reached by any address of this machine", () => {
      for (const addresses of [v4, v6]) {
        expect(points(addresses, "http://10.1.2.3:2379")).toBe(true)
        expect(points(addresses, "http://[fe80::a00:27ff:fe4e:66a1]:2379")).toBe(true)
        expect(points(addresses, "http://127.0.0.1:2379")).toBe(true)
        expect(points(addresses, "http://127.0.0.53:2379")).toBe(true)
        expect(points(addresses, "http://localhost:2379")).toBe(true)
        expect(points(addresses, "http://[::1]:2379")).toBe(true)
      }
    })

    it("is not reached by another machine's address or another port", () => {
      expect(points(v4, "http://10.1.2.4:2379")).toBe(false)
      expect(points(v4, "http://10.1.2.3:2380")).toBe(false)
      expect(points(v6, "http://192.168.0.1:2379")).toBe(false)
    })
  })

  describe("a listener on an interface address", () => {
    const addresses = own(["http://10.1.2.3:2379"], machine)

    it("is reached by that address only", () => {
      expect(points(addresses, "http://10.1.2.3:2379")).toBe(true)
      expect(points(addresses, "http://127.0.0.1:2379")).toBe(false)
      expect(points(addresses, "http://localhost:2379")).toBe(false)
    })
  })

  describe("an endpoint host of 0.0.0.0 or ::", () => {
    it("reaches a loopback or wildcard listener on this machine", () => {
      expect(points(own(["http://127.0.0.1:2379"], machine), "http://0.0.0.0:2379")).toBe(true)
      expect(points(own(["http://localhost:2379"], machine), "http://0.0.0.0:2379")).toBe(true)
      expect(points(own(["http://0.0.0.0:2379"], machine), "http://0.0.0.0:2379")).toBe(true)
      expect(points(own(["http://[::1]:2379"], machine), "http://[::]:2379")).toBe(true)
    })

    it("not on another port", () => {
      expect(points(own(["http://127.0.0.1:2379"], machine), "http://0.0.0.0:2380")).toBe(false)
    })
  })

  describe("a host name", () => {
    it("counts by what it resolved to", () => {
      const wildcard = own(["http://0.0.0.0:2379"], machine)
      expect(points(wildcard, "http://thishost:2379", ["10.1.2.3"])).toBe(true)
      expect(points(wildcard, "http://thishost:2379", ["::ffff:10.1.2.3"])).toBe(true)
      expect(points(wildcard, "http://otherhost:2379", ["10.9.9.9"])).toBe(false)
      expect(points(wildcard, "http://thishost:2379", [])).toBe(false)
      const loopback = own(["http://127.0.0.1:2379"], machine)
      expect(points(loopback, "http://myself:2379", ["127.0.0.1"])).toBe(true)
      expect(points(loopback, "http://myself:2379", ["10.1.2.3"])).toBe(false)
    })
  })

  it("uses the scheme's default port when a URL has none", () => {
    expect(points(own(["http://127.0.0.1:80"]), "http://127.0.0.1")).toBe(true)
    expect(points(own(["https://127.0.0.1:443"]), "https://127.0.0.1")).toBe(true)
    expect(points(own(["http://127.0.0.1:443"]), "http://127.0.0.1")).toBe(false)
  })

  it("checks every listener", () => {
    const addresses = own(["http://127.0.0.1:2379", "http://10.1.2.3:4001"], machine)
    expect(points(addresses, "http://10.1.2.3:4001")).toBe(true)
    expect(points(addresses, "http://10.1.2.3:2379")).toBe(false)
  })
})

describe("normalizeHost", () => {
  it("lower-cases, strips brackets and writes IPv4-mapped IPv6 as IPv4", () => {
    expect(normalizeHost("[FE80::1]")).toBe("fe80::1")
    expect(normalizeHost("::ffff:10.0.0.1")).toBe("10.0.0.1")
    expect(normalizeHost("[::ffff:a00:1]")).toBe("10.0.0.1")
    expect(normalizeHost("::FFFF:7F00:1")).toBe("127.0.0.1")
    expect(normalizeHost("localhost")).toBe("localhost")
  })
})
