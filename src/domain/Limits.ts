/**
 * The fixed bounds that hold whatever clients send and members advertise (SPEC §3.13, §5.6).
 * README's limits table lists each one.
 */
import * as Duration from "effect/Duration"

export const limits = {
  /** Requests forwarded at once, every front together; past it the proxy answers 503. */
  inFlight: 16_384,
  /** Member connections per endpoint: enough for thousands of open watches, far below the fd limit. */
  connectionsPerEndpoint: 4_096,
  /** Idle member connections kept per endpoint for the next request. */
  idleConnectionsPerEndpoint: 256,
  /** HTTP/2 connections relayed at once in read-write mode (two sockets each). */
  relays: 4_096,
  /** How long in-flight requests may finish on shutdown before the rest are cut. */
  drain: Duration.seconds(5),
} as const
