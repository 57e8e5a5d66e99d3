/** Opening a connection to a member's client URL, for every front (SPEC §3.12 dial timeout). */
import * as net from "node:net"
import * as tls from "node:tls"
import * as Data from "effect/Data"
import type { Endpoint } from "../../domain/Endpoints.js"
import type { ClientTls } from "../TlsMaterial.js"

/** The member did not complete the TCP or TLS handshake within `--proxy-dial-timeout`. */
export class DialTimeout extends Data.TaggedError("DialTimeout")<{
  readonly endpoint: string
  readonly millis: number
}> {
  override get message(): string {
    return `no connection to ${this.endpoint} within ${this.millis} ms`
  }
}

/** The event that says a dialled socket is ready to carry requests. */
export const readyEvent = (endpoint: Endpoint): "secureConnect" | "connect" =>
  endpoint.key.startsWith("https:") ? "secureConnect" : "connect"

/**
 * Opens a connection to a member's client URL: TCP for http (HTTP/2 with prior knowledge, as
 * members expect, or HTTP/1.1), TLS offering only `protocol` by ALPN for https with the §8.3
 * client settings. The dial timeout covers the TCP and the TLS handshakes; the socket reports it
 * as a `DialTimeout` error.
 */
export const dialMember = (
  endpoint: Endpoint,
  protocol: "h2" | "http/1.1",
  towardsMembers: ClientTls,
  dialMs: number,
): net.Socket => {
  const url = new URL(endpoint.key)
  const host = url.hostname.replace(/^\[|\]$/g, "")
  const secure = url.protocol === "https:"
  const port = Number(url.port === "" ? (secure ? 443 : 80) : url.port)
  const socket: net.Socket = secure
    ? tls.connect({
        host,
        port,
        ALPNProtocols: [protocol],
        ...(net.isIP(host) === 0 ? { servername: host } : {}),
        ...towardsMembers,
      })
    : net.connect({ host, port })
  socket.setNoDelay(true)
  if (dialMs > 0) {
    socket.setTimeout(dialMs, () =>
      socket.destroy(new DialTimeout({ endpoint: endpoint.url, millis: dialMs })),
    )
    socket.once(readyEvent(endpoint), () => socket.setTimeout(0))
  }
  return socket
}
