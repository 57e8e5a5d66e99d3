/** Header rules of a proxy (SPEC §3.1): hop-by-hop removal, `X-Forwarded-For`, `Via`. */

/** Hop-by-hop headers (RFC 9110 §7.6.1), lower case. `Host` is set by the upstream client. */
const hopByHop: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
])

/** Header lines as node:http gives them (strings) or undici does (latin1 Buffers). */
type RawHeaders = ReadonlyArray<string> | ReadonlyArray<Buffer>

const text = (item: string | Buffer): string =>
  typeof item === "string" ? item : item.toString("latin1")

/** The header names a `Connection` header lists, lower case. */
const namedByConnection = (raw: RawHeaders): ReadonlySet<string> | undefined => {
  let named: Set<string> | undefined
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 10 && text(raw[i]!).toLowerCase() === "connection") {
      named ??= new Set()
      for (const token of text(raw[i + 1]!).split(",")) {
        const name = token.trim().toLowerCase()
        if (name !== "" && name !== "close" && name !== "keep-alive") named.add(name)
      }
    }
  }
  return named
}

/**
 * Copies a flat `[name, value, ...]` header list, as strings, without hop-by-hop headers and the ones
 * `Connection` names, and without the names in `drop` (lower case).
 */
export const endToEnd = (raw: RawHeaders, drop: ReadonlySet<string>): Array<string> => {
  const named = namedByConnection(raw)
  const out: Array<string> = []
  for (let i = 0; i < raw.length; i += 2) {
    const name = text(raw[i]!)
    const lower = name.toLowerCase()
    if (hopByHop.has(lower) || drop.has(lower) || named?.has(lower) === true) continue
    out.push(name, text(raw[i + 1]!))
  }
  return out
}

/** Whether a flat header list has a Content-Length (a sized answer, not a stream). */
export const hasContentLength = (headers: ReadonlyArray<string>): boolean => {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]!.length === 14 && headers[i]!.toLowerCase() === "content-length") return true
  }
  return false
}

/**
 * Dropped from the request sent upstream: `Host` comes from the member URL, never from the
 * client; `Expect: 100-continue` was answered by our own server and the body is already read.
 */
export const requestDrop: ReadonlySet<string> = new Set([
  "host",
  "x-forwarded-for",
  "via",
  "expect",
])
export const responseDrop: ReadonlySet<string> = new Set()

/** With `--cors` the proxy answers for CORS itself: the member's own CORS headers are dropped. */
export const corsResponseDrop: ReadonlySet<string> = new Set([
  "access-control-allow-origin",
  "access-control-allow-methods",
  "access-control-allow-headers",
  "access-control-allow-credentials",
  "access-control-expose-headers",
  "access-control-max-age",
])

/** A client address as it goes into `X-Forwarded-For`: IPv4-mapped IPv6 written as IPv4. */
export const clientAddress = (remote: string | undefined): string =>
  remote === undefined ? "unknown" : remote.startsWith("::ffff:") ? remote.slice(7) : remote

export const appendForwardedFor = (existing: string | undefined, client: string): string =>
  existing === undefined || existing === "" ? client : `${existing}, ${client}`

/**
 * This proxy's `Via` entry. It names the endpoint the request was sent to and a nonce that the
 * proxy remembers while the request is out, so that a request coming back can be told from a
 * forged claim (SPEC §3.13, §5.6).
 */
export const viaEntry = (proxyId: string, endpointUrl: string, nonce: string): string =>
  `1.1 ${proxyId} (${endpointUrl} ${nonce})`

export const appendVia = (existing: string | undefined, entry: string): string =>
  existing === undefined || existing === "" ? entry : `${existing}, ${entry}`

/**
 * The nonce of our own `Via` entry when a request carries one, `""` when our id is there
 * without a readable nonce, `undefined` when our id is absent. Entries are
 * `protocol pseudonym (comment)`, comma separated.
 */
export const ownViaNonce = (via: string | undefined, proxyId: string): string | undefined => {
  if (via === undefined || !via.includes(proxyId)) return undefined
  const marker = ` ${proxyId} (`
  const at = via.indexOf(marker)
  if (at === -1) return ""
  const start = at + marker.length
  const end = via.indexOf(")", start)
  if (end === -1) return ""
  const comment = via.slice(start, end)
  const space = comment.lastIndexOf(" ")
  return space === -1 ? "" : comment.slice(space + 1)
}
