/**
 * What the HTTP/2 relay and the read-only gRPC front share (SPEC §3.10): recognising the
 * connection preface and the gRPC answers the proxy makes itself.
 */
import * as http2 from "node:http2"
import { grpcAnswer, httpAnswer, type ProxyRefusal } from "../../domain/Errors.js"

/** What every HTTP/2 client sends first (RFC 9113 §3.4); no HTTP/1 request starts this way. */
export const http2Preface: Buffer = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1")

export type Sniffed = "h2" | "http/1.1" | "undecided"

/** Which protocol a connection speaks, from its first bytes; "undecided" while they are a prefix of the preface. */
export const sniffPreface = (head: Buffer): Sniffed => {
  const n = Math.min(head.length, http2Preface.length)
  if (head.compare(http2Preface, 0, n, 0, n) !== 0) return "http/1.1"
  return head.length >= http2Preface.length ? "h2" : "undecided"
}

/** The tag a connection failure is logged and counted with: the system code, else the error's name. */
export const failureTag = (error: unknown): string => {
  const e = error as { code?: unknown; _tag?: unknown; name?: unknown }
  if (typeof e?.code === "string") return e.code
  if (typeof e?._tag === "string") return e._tag
  return typeof e?.name === "string" ? e.name : "Error"
}

// --- gRPC answers the proxy makes itself ---------------------------------------------------

export const grpcStatus = {
  internal: 13,
  unimplemented: 12,
  unavailable: 14,
  resourceExhausted: 8,
} as const

/** The gRPC status for each refusal: a read-only refusal is UNIMPLEMENTED, the rest say "try again". */
export const percentEncode = (message: string): string => {
  let out = ""
  for (const byte of Buffer.from(message, "utf8")) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`
  }
  return out
}

/** Ends a call at once in trailers-only form: HTTP 200, `grpc-status` and `grpc-message` in one HEADERS frame. */
export const answerGrpc = (
  stream: http2.ServerHttp2Stream,
  status: number,
  message: string,
): void => {
  if (stream.destroyed || stream.closed) return
  if (stream.headersSent) {
    stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR)
    return
  }
  stream.respond(
    {
      ":status": 200,
      "content-type": "application/grpc",
      "grpc-status": String(status),
      "grpc-message": percentEncode(message),
    },
    { endStream: true },
  )
}

/** Ends an HTTP/2 stream with the refusal: gRPC calls in gRPC's form, anything else as the JSON answer. */
export const answerRefusal = (
  stream: http2.ServerHttp2Stream,
  grpc: boolean,
  refusal: ProxyRefusal,
): void => {
  if (grpc) {
    const { code, message } = grpcAnswer(refusal)
    answerGrpc(stream, code, message)
    return
  }
  if (stream.destroyed || stream.closed) return
  if (stream.headersSent) {
    stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR)
    return
  }
  const { status, body } = httpAnswer(refusal)
  stream.respond({
    ":status": status,
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  })
  stream.end(body)
}
