/** Headers the proxy adds to what it forwards (SPEC §3.1, §5.6): `X-Forwarded-For` and `Via`. */

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
