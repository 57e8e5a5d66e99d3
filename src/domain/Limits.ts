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
  /**
   * HTTP/2 flow-control window of one stream in the read-only front, towards clients and members
   * alike: what a stream whose reader stalls may hold in the proxy, each way. One maximum-size
   * frame: a connection at the stream bound holds about 4 MiB however its client stalls, and the
   * buffers are small enough to be returned soon after (64 KiB windows left some 16 MiB of
   * buffers waiting for a full garbage collection that an idle proxy does not run). It costs a
   * single big answer some speed on a slow link (16 KiB per round trip); on loopback and a LAN,
   * 1 MB Range answers came out no slower than with 64 KiB.
   */
  http2StreamWindow: 16_384,
  /**
   * HTTP/2 flow-control window of a whole connection: wide, so that a stalled stream never holds
   * up the others (the proxy takes connection-level data off the socket as it arrives).
   */
  http2ConnectionWindow: 1 << 20,
  /**
   * An HTTP/2 client connection silent for this long is pinged, and destroyed when the answer
   * does not come within as long again: a connection Node's HTTP/2 stopped reading after a
   * protocol error (Node 20 neither reports nor closes it) cannot answer.
   */
  http2IdleProbe: Duration.seconds(4),
  /**
   * An HTTP/2 client connection that opened this many streams, or an HTTP/1.1 one that sent this
   * many bytes, leaves memory worth giving back when it ends: a full garbage collection follows
   * once such connections have stopped ending for `burstQuiet`.
   */
  http2BurstStreams: 100,
  http1BurstBytes: 1 << 20,
  burstQuiet: Duration.seconds(2),
  /** How long in-flight requests may finish on shutdown before the rest are cut. */
  drain: Duration.seconds(5),
} as const

/** The HTTP/1.1 front's bounds on one client connection (SPEC §3.9, §3.11, §3.13). */
export const http1Limits = {
  /** Requests read and not yet answered on one connection; past it the proxy stops reading it. */
  pipelineDepth: 16,
  /**
   * An idle keep-alive connection is closed after this long. Members and etcd's own proxy never
   * close idle client connections, and clients reuse them for long (Go's transport keeps them 90
   * s or forever): closing early makes a request race the close. nginx keeps them 75 s.
   */
  keepAliveMs: 75_000,
  /** A request head must be complete this long after its first byte, else 408 (Node's default). */
  headersMs: 60_000,
  /** A request body that makes no progress this long is answered 408 and the connection closed. */
  bodyStallMs: 15_000,
  /** After a refusal that closes, the rest of what the client sends is read and dropped this long. */
  lingerMs: 2_000,
  /** A new connection must show which protocol it speaks (its first bytes) within this long. */
  sniffMs: 10_000,
} as const
