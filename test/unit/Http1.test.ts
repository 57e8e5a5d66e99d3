/** HTTP/1.1 heads as the proxy re-emits them (SPEC §3.1): what goes, what stays, what is added. */
import { describe, expect, it } from "@effect/vitest"
import {
  asChunk,
  headEnd,
  readRequestHead,
  readResponseHead,
  writeRequestHead,
  writeResponseHead,
} from "../../src/domain/Http1.js"

const hopByHop = [
  "Connection",
  "keep-alive",
  "Keep-Alive",
  "timeout=5",
  "Proxy-Authenticate",
  "Basic",
  "Proxy-Authorization",
  "Basic eDp5",
  "TE",
  "trailers",
  "Trailer",
  "Expires",
  "UPGRADE",
  "h2c",
  "Proxy-Connection",
  "keep-alive",
]

/** The header lines a head string carries, as `[name, value]` pairs. */
const lines = (head: string) =>
  head
    .split("\r\n")
    .slice(1)
    .filter((line) => line !== "")
    .map((line) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 2)])

describe("readRequestHead", () => {
  it("drops every hop-by-hop header whatever its case, and keeps the rest in order", () => {
    const head = readRequestHead([
      ...hopByHop,
      "Accept",
      "*/*",
      "Authorization",
      "Bearer t",
      "X-Twice",
      "1",
      "X-Twice",
      "2",
    ])
    expect(head.lines).toBe(
      "Accept: */*\r\nAuthorization: Bearer t\r\nX-Twice: 1\r\nX-Twice: 2\r\n",
    )
  })

  it("drops the headers Connection names, from every Connection header", () => {
    const head = readRequestHead([
      "connection",
      "close, X-Custom , x-other",
      "X-Custom",
      "1",
      "X-Other",
      "2",
      "Connection",
      "X-Third",
      "x-third",
      "3",
      "X-Kept",
      "4",
    ])
    expect(head.lines).toBe("X-Kept: 4\r\n")
  })

  it("takes Host, Via, X-Forwarded-For, Expect and the framing aside", () => {
    const head = readRequestHead([
      "Host",
      "elsewhere:80",
      "X-Forwarded-For",
      "1.2.3.4",
      "Via",
      "1.0 a",
      "via",
      "1.1 b",
      "Expect",
      "100-Continue",
      "Content-Length",
      "5",
      "Origin",
      "https://app",
    ])
    expect(head).toMatchObject({
      lines: "Origin: https://app\r\n",
      hasHost: true,
      via: "1.0 a, 1.1 b",
      forwardedFor: "1.2.3.4",
      expectContinue: true,
      contentLength: 5,
      chunked: false,
      origin: "https://app",
    })
  })

  it("a chunked body is re-framed as chunked; another coding is flagged", () => {
    expect(readRequestHead(["Transfer-Encoding", "chunked"])).toMatchObject({
      chunked: true,
      otherCoding: false,
      lines: "",
    })
    expect(readRequestHead(["Transfer-Encoding", "gzip, chunked"]).otherCoding).toBe(true)
  })
})

describe("writeRequestHead", () => {
  it("sends path and query unchanged, the member as Host, and appends XFF and Via", () => {
    const head = writeRequestHead(
      "PUT",
      "/v2/keys/a?prevExist=false",
      "10.0.0.1:2379",
      readRequestHead(["Content-Type", "application/x-www-form-urlencoded", "Content-Length", "7"]),
      "1.2.3.4, 10.0.0.9",
      "1.1 etcd-proxy-x (http://10.0.0.1:2379 n)",
    )
    expect(head.split("\r\n")[0]).toBe("PUT /v2/keys/a?prevExist=false HTTP/1.1")
    expect(lines(head)).toEqual([
      ["Host", "10.0.0.1:2379"],
      ["Content-Type", "application/x-www-form-urlencoded"],
      ["Content-Length", "7"],
      ["X-Forwarded-For", "1.2.3.4, 10.0.0.9"],
      ["Via", "1.1 etcd-proxy-x (http://10.0.0.1:2379 n)"],
    ])
    expect(head.endsWith("\r\n\r\n")).toBe(true)
  })
})

describe("readResponseHead and writeResponseHead", () => {
  const etcd = ["Content-Type", "application/json", "X-Etcd-Index", "7", "Content-Length", "88"]

  it("a member's usual head has nothing to drop and passes as it came", () => {
    expect(readResponseHead(etcd, false)).toEqual({
      dropSome: false,
      contentLength: 88,
      chunked: false,
    })
    expect(readResponseHead(["Transfer-Encoding", "chunked"], false)).toEqual({
      dropSome: false,
      contentLength: undefined,
      chunked: true,
    })
  })

  it("hop-by-hop headers, and the member's CORS headers under --cors, must go", () => {
    expect(readResponseHead([...etcd, "Connection", "close"], false).dropSome).toBe(true)
    expect(readResponseHead([...etcd, "Access-Control-Allow-Origin", "*"], false).dropSome).toBe(
      false,
    )
    expect(readResponseHead([...etcd, "Access-Control-Allow-Origin", "*"], true).dropSome).toBe(
      true,
    )
  })

  it("a new head keeps the status and end-to-end headers, drops the rest, adds the extra lines", () => {
    const head = writeResponseHead(
      201,
      "Created",
      [
        ...hopByHop,
        ...etcd,
        "Access-Control-Allow-Origin",
        "*",
        "Connection",
        "X-Private",
        "X-Private",
        "1",
      ],
      true,
      true,
      "Access-Control-Allow-Origin: https://app\r\nConnection: close\r\n",
    )
    expect(head.split("\r\n")[0]).toBe("HTTP/1.1 201 Created")
    expect(lines(head)).toEqual([
      ["Content-Type", "application/json"],
      ["X-Etcd-Index", "7"],
      ["Content-Length", "88"],
      ["Access-Control-Allow-Origin", "https://app"],
      ["Connection", "close"],
    ])
  })

  it("framing headers go when the proxy frames the body itself", () => {
    const head = writeResponseHead(
      200,
      "OK",
      ["Transfer-Encoding", "chunked", ...etcd],
      false,
      false,
      "",
    )
    expect(lines(head).map(([name]) => name)).toEqual(["Content-Type", "X-Etcd-Index"])
  })
})

describe("framing helpers", () => {
  it("a head ends after its first empty line", () => {
    const bytes = Buffer.from("HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody\r\n\r\n")
    expect(headEnd(bytes)).toBe(bytes.indexOf("body"))
    expect(headEnd(Buffer.from("HTTP/1.1 200 OK\r\nA: b\r\n"))).toBe(-1)
  })

  it("a body piece becomes one chunk: hex size, data, CRLF", () => {
    expect(Buffer.concat(asChunk(Buffer.from("x".repeat(26)))).toString()).toBe(
      `1a\r\n${"x".repeat(26)}\r\n`,
    )
  })
})
