/**
 * HTTP/1.1 heads as the proxy re-emits them (SPEC §3.1, §11): requests without hop-by-hop
 * headers and with `Via`/`X-Forwarded-For` appended; responses passed on as they came unless
 * they carry something to drop. Pure functions over llhttp's flat `[name, value, ...]` lists,
 * written for the hot path: one pass, names lower-cased only when their length could match.
 */

/** What the proxy needs to know about a request head, read in one pass. */
export interface RequestHead {
  /** The end-to-end header lines, `Name: value\r\n` each, as the member will get them. */
  readonly lines: string
  readonly via: string | undefined
  readonly forwardedFor: string | undefined
  readonly hasHost: boolean
  /** The declared body length (llhttp has refused duplicates and conflicts already). */
  readonly contentLength: number | undefined
  readonly chunked: boolean
  /** A transfer coding other than plain `chunked` (`gzip, chunked`): the proxy refuses it. */
  readonly otherCoding: boolean
  readonly expectContinue: boolean
  /** An `Expect` other than `100-continue` (an empty one too): Node's server answers 417. */
  readonly expectOther: boolean
  readonly origin: string | undefined
  readonly corsRequestHeaders: string | undefined
}

/** How a member's response head must be treated before it goes to the client. */
export interface ResponseHead {
  /** It carries a header the proxy must drop (hop-by-hop, or one `--cors` replaces). */
  readonly dropSome: boolean
  readonly contentLength: number | undefined
  readonly chunked: boolean
}

const lower = (name: string): string => name.toLowerCase()

/** The header names `Connection` lists (beyond `close` and `keep-alive`), lower case. */
const connectionOptions = (
  value: string,
  into: Set<string> | undefined,
): Set<string> | undefined => {
  let named = into
  for (const token of value.split(",")) {
    const name = token.trim().toLowerCase()
    if (name !== "" && name !== "close" && name !== "keep-alive") {
      named ??= new Set()
      named.add(name)
    }
  }
  return named
}

/**
 * Hop-by-hop and proxy-replaced request headers, by length first: `Host` (the member URL's),
 * `Via` and `X-Forwarded-For` (appended to), `Expect` (the proxy answers 100-continue itself),
 * `Content-Length`/`Transfer-Encoding` (re-emitted by the framing the proxy uses).
 */
const requestSkip = (name: string): string | undefined => {
  switch (name.length) {
    case 2:
    case 3:
    case 4:
    case 6:
    case 7:
    case 10:
    case 14:
    case 15:
    case 16:
    case 17:
    case 18:
    case 19:
    case 30:
      return lower(name)
    default:
      return undefined
  }
}

export const readRequestHead = (raw: ReadonlyArray<string>): RequestHead => {
  let named: Set<string> | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    if (name.length === 10 && lower(name) === "connection") {
      named = connectionOptions(raw[i + 1]!, named)
    }
  }
  let lines = ""
  let via: string | undefined
  let forwardedFor: string | undefined
  let hasHost = false
  let contentLength: number | undefined
  let chunked = false
  let otherCoding = false
  let expect: string | undefined
  let origin: string | undefined
  let corsRequestHeaders: string | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    const value = raw[i + 1]!
    const key = requestSkip(name)
    if (key !== undefined) {
      switch (key) {
        case "host":
          hasHost = true
          continue
        case "via":
          via = via === undefined ? value : `${via}, ${value}`
          continue
        case "x-forwarded-for":
          forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`
          continue
        case "expect":
          expect = expect === undefined ? value : `${expect}, ${value}`
          continue
        case "content-length":
          contentLength = Number(value)
          continue
        case "transfer-encoding":
          // llhttp accepts only a final `chunked` in a request.
          chunked = true
          if (value.trim().toLowerCase() !== "chunked") otherCoding = true
          continue
        case "connection":
        case "keep-alive":
        case "proxy-authenticate":
        case "proxy-authorization":
        case "proxy-connection":
        case "te":
        case "trailer":
        case "upgrade":
          continue
        case "origin":
          origin = value
          break
        case "access-control-request-headers":
          corsRequestHeaders = value
          break
      }
    }
    if (named !== undefined && named.has(key ?? lower(name))) continue
    lines += `${name}: ${value}\r\n`
  }
  // Node's server reads `Expect` with this expression (`continueExpression` of `_http_common`).
  const expectContinue = expect !== undefined && /(?:^|\W)100-continue(?:$|\W)/i.test(expect)
  return {
    lines,
    via,
    forwardedFor,
    hasHost,
    contentLength,
    chunked,
    otherCoding,
    expectContinue,
    expectOther: expect !== undefined && !expectContinue,
    origin,
    corsRequestHeaders,
  }
}

/** The member's CORS headers, replaced by the proxy's own under `--cors`. */
const corsHeaderNames: ReadonlySet<string> = new Set([
  "access-control-allow-origin",
  "access-control-allow-methods",
  "access-control-allow-headers",
  "access-control-allow-credentials",
  "access-control-expose-headers",
  "access-control-max-age",
])

/** Hop-by-hop headers (RFC 9110 §7.6.1) but `Transfer-Encoding`, which framing handles. */
const responseHopByHop: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "upgrade",
])

/** Whether a response header is dropped on the way to the client (`transfer-encoding` aside). */
const responseDrops = (key: string, cors: boolean, named: Set<string> | undefined): boolean =>
  responseHopByHop.has(key) ||
  (cors && corsHeaderNames.has(key)) ||
  (named !== undefined && named.has(key))

const mayDrop = (name: string): boolean =>
  name.length === 2 ||
  name.length === 7 ||
  name.length === 10 ||
  name.length === 16 ||
  name.length === 18 ||
  name.length === 19 ||
  name.length >= 22

export const readResponseHead = (raw: ReadonlyArray<string>, cors: boolean): ResponseHead => {
  let dropSome = false
  let contentLength: number | undefined
  let chunked = false
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    if (name.length === 14 && lower(name) === "content-length") {
      contentLength = Number(raw[i + 1])
    } else if (name.length === 17 && lower(name) === "transfer-encoding") {
      chunked = /(?:^|,)\s*chunked\s*$/i.test(raw[i + 1]!)
    } else if (mayDrop(name)) {
      const key = lower(name)
      if (responseHopByHop.has(key) || (cors && corsHeaderNames.has(key))) dropSome = true
    }
  }
  return { dropSome, contentLength, chunked }
}

/**
 * A response head written anew: the member's status line and end-to-end headers, then
 * `extra` lines (CORS, framing, `Connection`) ending in `\r\n`.
 */
export const writeResponseHead = (
  statusCode: number,
  statusMessage: string,
  raw: ReadonlyArray<string>,
  cors: boolean,
  keepFraming: boolean,
  extra: string,
): string => {
  let named: Set<string> | undefined
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 10 && lower(raw[i]!) === "connection") {
      named = connectionOptions(raw[i + 1]!, named)
    }
  }
  let head = `HTTP/1.1 ${statusCode} ${statusMessage}\r\n`
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    const key = lower(name)
    if (responseDrops(key, cors, named)) continue
    if (!keepFraming && (key === "transfer-encoding" || key === "content-length")) continue
    head += `${name}: ${raw[i + 1]!}\r\n`
  }
  return `${head}${extra}\r\n`
}

/** The request line and head sent to a member; `framing` is its body's framing header line. */
export const writeRequestHead = (
  method: string,
  target: string,
  host: string,
  head: RequestHead,
  forwardedFor: string,
  via: string,
): string => {
  const framing =
    head.contentLength !== undefined
      ? `Content-Length: ${head.contentLength}\r\n`
      : head.chunked
        ? "Transfer-Encoding: chunked\r\n"
        : ""
  return `${method} ${target} HTTP/1.1\r\nHost: ${host}\r\n${head.lines}${framing}X-Forwarded-For: ${forwardedFor}\r\nVia: ${via}\r\n\r\n`
}

const chunkEnd = Buffer.from("\r\n", "latin1")
/** The last chunk of a chunked body, with no trailers. */
export const lastChunk: Buffer = Buffer.from("0\r\n\r\n", "latin1")

/** One body piece as a chunk of chunked transfer coding: size line, data, CRLF. */
export const asChunk = (data: Buffer): ReadonlyArray<Buffer> => [
  Buffer.from(`${data.length.toString(16)}\r\n`, "latin1"),
  data,
  chunkEnd,
]

/** Where a head ends in `bytes` (just past its empty line), or -1; llhttp requires CRLF line ends. */
export const headEnd = (bytes: Buffer, from = 0): number => {
  const at = bytes.indexOf("\r\n\r\n", from, "latin1")
  return at === -1 ? -1 : at + 4
}

/** Answers the proxy writes itself, before or instead of any member's. */
export const continueHead = "HTTP/1.1 100 Continue\r\n\r\n"

/** The status lines of Node's own server for the refusals of SPEC §3.11. */
export const framingRefusal = (status: 400 | 408 | 431 | 505): string => {
  const reason = {
    400: "Bad Request",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    505: "HTTP Version Not Supported",
  }[status]
  return `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\n\r\n`
}
