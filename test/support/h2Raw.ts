/** HTTP/2 written by hand, for tests that send what no well-behaved client library would. */
import type * as net from "node:net"

export const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1")

export const frameTypes = {
  data: 0x0,
  headers: 0x1,
  rstStream: 0x3,
  settings: 0x4,
  ping: 0x6,
  goaway: 0x7,
  continuation: 0x9,
} as const

export const flags = { endStream: 0x1, ack: 0x1, endHeaders: 0x4 } as const

export const frame = (
  type: number,
  flagBits: number,
  streamId: number,
  payload: Buffer = Buffer.alloc(0),
): Buffer => {
  const header = Buffer.alloc(9)
  header.writeUIntBE(payload.length, 0, 3)
  header[3] = type
  header[4] = flagBits
  header.writeUInt32BE(streamId, 5)
  return Buffer.concat([header, payload])
}

/** An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1). */
const hpackInteger = (value: number, prefixBits: number, first: number): Buffer => {
  const max = (1 << prefixBits) - 1
  if (value < max) return Buffer.from([first | value])
  const bytes = [first | max]
  let rest = value - max
  while (rest >= 128) {
    bytes.push((rest & 127) | 128)
    rest >>= 7
  }
  bytes.push(rest)
  return Buffer.from(bytes)
}

const hpackString = (text: string | Buffer): Buffer => {
  const bytes = typeof text === "string" ? Buffer.from(text, "latin1") : text
  return Buffer.concat([hpackInteger(bytes.length, 7, 0), bytes])
}

/** One header as a literal without indexing and with a literal name: no decoder state is touched. */
export const literalHeader = (name: string, value: string | Buffer): Buffer =>
  Buffer.concat([Buffer.from([0x00]), hpackString(name), hpackString(value)])

/** The header block of a gRPC call to `path`, as a client with prior knowledge sends it. */
export const grpcRequestBlock = (path: string, authority = "127.0.0.1"): Buffer =>
  Buffer.concat([
    literalHeader(":method", "POST"),
    literalHeader(":scheme", "http"),
    literalHeader(":path", path),
    literalHeader(":authority", authority),
    literalHeader("content-type", "application/grpc"),
    literalHeader("te", "trailers"),
  ])

/** A gRPC length-prefixed message around an encoded protobuf message. */
export const grpcMessage = (message: Buffer): Buffer => {
  const prefix = Buffer.alloc(5)
  prefix.writeUInt32BE(message.length, 1)
  return Buffer.concat([prefix, message])
}

/**
 * `RangeRequest { key, serializable: true }` (fields 1 and 7): answered from the member's own
 * store, so that a leader election on a loaded machine cannot fail it.
 */
export const rangeRequest = (key: string): Buffer => {
  const k = Buffer.from(key)
  return grpcMessage(Buffer.concat([Buffer.from([0x0a, k.length]), k, Buffer.from([0x38, 0x01])]))
}

export interface Frame {
  readonly type: number
  readonly flags: number
  readonly streamId: number
  readonly payload: Buffer
}

/** The settings entries of a SETTINGS frame, by identifier. */
export const settingsOf = (settings: Frame): Map<number, number> => {
  const entries = new Map<number, number>()
  for (let at = 0; at + 6 <= settings.payload.length; at += 6) {
    entries.set(settings.payload.readUInt16BE(at), settings.payload.readUInt32BE(at + 2))
  }
  return entries
}

/** Collects every whole frame `socket` receives (after the server preface, none is skipped). */
export const collectFrames = (socket: net.Socket, onFrame: (frame: Frame) => void = () => {}) => {
  const frames: Array<Frame> = []
  let pending: Buffer = Buffer.alloc(0)
  socket.on("data", (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
    while (pending.length >= 9) {
      const length = pending.readUIntBE(0, 3)
      if (pending.length < 9 + length) break
      const received: Frame = {
        type: pending[3]!,
        flags: pending[4]!,
        streamId: pending.readUInt32BE(5) & 0x7fffffff,
        payload: Buffer.from(pending.subarray(9, 9 + length)),
      }
      pending = pending.subarray(9 + length)
      frames.push(received)
      onFrame(received)
    }
  })
  return frames
}
