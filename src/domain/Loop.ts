/** Recognises a member client URL that would send requests back into this proxy (SPEC §5.6). */
import { isIP } from "node:net"

const defaultPort = (url: URL): number =>
  url.port !== "" ? Number(url.port) : url.protocol === "https:" ? 443 : 80

/** Lower case, without IPv6 brackets, IPv4-mapped IPv6 written as IPv4. */
export const normalizeHost = (host: string): string => {
  const bare = host.toLowerCase().replace(/^\[|\]$/g, "")
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(bare)
  if (mapped !== null) return mapped[1]!
  // The URL parser writes `[::ffff:127.0.0.1]` as `[::ffff:7f00:1]`; it still dials 127.0.0.1.
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(bare)
  if (hex === null) return bare
  const high = parseInt(hex[1]!, 16)
  const low = parseInt(hex[2]!, 16)
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`
}

const isLoopback = (ip: string): boolean => ip === "::1" || /^127\./.test(ip)
const isWildcard = (ip: string): boolean => ip === "0.0.0.0" || ip === "::"

export interface OwnAddresses {
  /** The URLs this proxy listens on. */
  readonly listeners: ReadonlyArray<URL>
  /** Every address of this machine's interfaces (normalized). */
  readonly local: ReadonlyArray<string>
}

/**
 * True when `url` reaches one of our listeners: the same port, and a host that is the
 * listener's own address (any address of this machine for a wildcard listener, and
 * `localhost` or any loopback address for a loopback listener). `resolved` holds what a
 * host name resolved to, so `http://myhost:2379` is recognised too.
 */
export const pointsAtListener = (
  own: OwnAddresses,
  url: URL,
  resolved: ReadonlyArray<string> = [],
): boolean => {
  const port = defaultPort(url)
  const host = normalizeHost(url.hostname)
  const candidates = new Set<string>(resolved.map(normalizeHost))
  if (isIP(host) !== 0) candidates.add(host)
  if (host === "localhost") {
    candidates.add("127.0.0.1")
    candidates.add("::1")
  }
  // Dialling 0.0.0.0 or :: reaches this machine.
  if ([...candidates].some(isWildcard)) {
    candidates.add("127.0.0.1")
    candidates.add("::1")
  }
  const local = new Set(own.local.map(normalizeHost))
  return own.listeners.some((listener) => {
    if (defaultPort(listener) !== port) return false
    const listenHost = normalizeHost(listener.hostname)
    return [...candidates].some((ip) => {
      if (isWildcard(listenHost)) return isLoopback(ip) || isWildcard(ip) || local.has(ip)
      if (listenHost === "localhost") return isLoopback(ip)
      return ip === listenHost
    })
  })
}
