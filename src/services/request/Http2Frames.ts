/**
 * HTTP/2 frame headers read on the fly for the read-write relay (SPEC §3.10, §3.13): how many
 * streams the client has open, and the member's SETTINGS_MAX_CONCURRENT_STREAMS capped to the
 * proxy's bound on the way to the client. Nine-byte frame headers only: no HPACK, and a chunk
 * with nothing to change is passed on as the same Buffer.
 */

/** RFC 9113 §6 frame types this reader acts on. */
export const frameType = {
  data: 0x0,
  headers: 0x1,
  rstStream: 0x3,
  settings: 0x4,
  goaway: 0x7,
} as const

/** RFC 9113 §7 error codes the relay sends. */
export const errorCode = {
  refusedStream: 0x7,
  enhanceYourCalm: 0xb,
} as const

const frameHeaderLength = 9
/** `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, which the client sends before its first frame. */
const prefaceLength = 24
const endStreamFlag = 0x1
const ackFlag = 0x1
const maxConcurrentStreamsId = 0x3
/**
 * A member's SETTINGS frame is held until it is complete so that it can be rewritten. RFC 9113
 * defines six settings (36 bytes); a longer frame is passed on unchanged rather than held.
 */
const maxHeldSettings = 1_024

const clientEnded = 1
const memberEnded = 2
const bothEnded = clientEnded | memberEnded

/** A frame header, serialised. */
export const frameHeader = (
  length: number,
  type: number,
  flags: number,
  streamId: number,
): Buffer => {
  const header = Buffer.allocUnsafe(frameHeaderLength)
  header.writeUIntBE(length, 0, 3)
  header[3] = type
  header[4] = flags
  header.writeUInt32BE(streamId & 0x7fffffff, 5)
  return header
}

/** A GOAWAY frame (RFC 9113 §6.8): streams above `lastStreamId` were not processed and may be retried. */
export const goawayFrame = (lastStreamId: number, code: number, debug: string): Buffer => {
  const text = Buffer.from(debug, "utf8")
  const payload = Buffer.allocUnsafe(8 + text.length)
  payload.writeUInt32BE(lastStreamId & 0x7fffffff, 0)
  payload.writeUInt32BE(code, 4)
  text.copy(payload, 8)
  return Buffer.concat([frameHeader(payload.length, frameType.goaway, 0, 0), payload])
}

/**
 * A SETTINGS frame (header and payload) with MAX_CONCURRENT_STREAMS lowered to `limit`, or added
 * when the member sent none (unlimited). A payload that is not whole entries is left as it is:
 * the client will reject it, as it would without the proxy.
 */
export const capConcurrentStreams = (frame: Buffer, limit: number): Buffer => {
  const length = frame.length - frameHeaderLength
  if (length % 6 !== 0) return frame
  let out = frame
  let found = false
  for (let at = frameHeaderLength; at < frame.length; at += 6) {
    if (frame.readUInt16BE(at) !== maxConcurrentStreamsId) continue
    found = true
    if (frame.readUInt32BE(at + 2) <= limit) continue
    if (out === frame) out = Buffer.from(frame)
    out.writeUInt32BE(limit, at + 2)
  }
  if (found) return out
  const entry = Buffer.allocUnsafe(6)
  entry.writeUInt16BE(maxConcurrentStreamsId, 0)
  entry.writeUInt32BE(limit, 2)
  return Buffer.concat([
    frameHeader(length + 6, frameType.settings, frame[4]!, 0),
    frame.subarray(frameHeaderLength),
    entry,
  ])
}

/**
 * Follows one relayed connection in both directions. A stream is open from the client's HEADERS
 * on a new odd stream id until both sides have sent END_STREAM or either side RST_STREAM, as RFC
 * 9113 §5.1 counts it against SETTINGS_MAX_CONCURRENT_STREAMS. Whatever the bytes (garbage
 * included), it holds at most `limit` streams and one SETTINGS frame, and never throws.
 */
export class StreamTracker {
  /** Open client streams and which sides have ended them. */
  private readonly streams = new Map<number, number>()
  private lastClientStream = 0
  private clientSkip = prefaceLength
  private readonly clientHeader = Buffer.alloc(frameHeaderLength)
  private clientFill = 0
  private memberSkip = 0
  private held: Buffer | undefined

  constructor(readonly limit: number) {}

  /** Streams the client has open now. */
  get open(): number {
    return this.streams.size
  }

  /** The highest stream id the client opened within the bound: the `lastStreamId` of a GOAWAY. */
  get lastAccepted(): number {
    return this.lastClientStream
  }

  /**
   * Bytes passed to the client so far end on a frame boundary, so a frame of the proxy's own
   * (a GOAWAY) can follow them.
   */
  get atMemberFrameBoundary(): boolean {
    return this.memberSkip === 0
  }

  /** Reads bytes the client sent; false when they open a stream past the bound (nothing of the chunk may be relayed). */
  fromClient(chunk: Buffer): boolean {
    const n = chunk.length
    let i = 0
    while (i < n) {
      if (this.clientSkip > 0) {
        const step = Math.min(this.clientSkip, n - i)
        this.clientSkip -= step
        i += step
        continue
      }
      let header = chunk
      let at = i
      if (this.clientFill === 0 && n - i >= frameHeaderLength) {
        i += frameHeaderLength
      } else {
        const step = Math.min(frameHeaderLength - this.clientFill, n - i)
        chunk.copy(this.clientHeader, this.clientFill, i, i + step)
        this.clientFill += step
        i += step
        if (this.clientFill < frameHeaderLength) break
        this.clientFill = 0
        header = this.clientHeader
        at = 0
      }
      this.clientSkip = (header[at]! << 16) | (header[at + 1]! << 8) | header[at + 2]!
      const streamId = header.readUInt32BE(at + 5) & 0x7fffffff
      if (!this.clientFrame(header[at + 3]!, header[at + 4]!, streamId)) return false
    }
    return true
  }

  /**
   * Reads bytes the member sent and returns those to pass to the client: the same chunk unless a
   * SETTINGS frame in it was rewritten, less a frame header or SETTINGS frame still incomplete at
   * its end (held for the next chunk).
   */
  fromMember(chunk: Buffer): Buffer {
    const input = this.held === undefined ? chunk : Buffer.concat([this.held, chunk])
    this.held = undefined
    const n = input.length
    let i = 0
    let passedFrom = 0
    let pieces: Array<Buffer> | undefined
    while (i < n) {
      if (this.memberSkip > 0) {
        const step = Math.min(this.memberSkip, n - i)
        this.memberSkip -= step
        i += step
        continue
      }
      if (n - i < frameHeaderLength) {
        this.held = Buffer.from(input.subarray(i))
        break
      }
      const length = (input[i]! << 16) | (input[i + 1]! << 8) | input[i + 2]!
      const type = input[i + 3]!
      const flags = input[i + 4]!
      const streamId = input.readUInt32BE(i + 5) & 0x7fffffff
      if (
        type === frameType.settings &&
        (flags & ackFlag) === 0 &&
        streamId === 0 &&
        length <= maxHeldSettings
      ) {
        const end = i + frameHeaderLength + length
        if (end > n) {
          this.held = Buffer.from(input.subarray(i))
          break
        }
        pieces ??= []
        pieces.push(
          input.subarray(passedFrom, i),
          capConcurrentStreams(input.subarray(i, end), this.limit),
        )
        passedFrom = end
        i = end
        continue
      }
      this.memberFrame(type, flags, streamId)
      this.memberSkip = length
      i += frameHeaderLength
    }
    const passedTo = this.held === undefined ? n : i
    if (pieces === undefined) {
      return passedFrom === 0 && passedTo === n ? input : input.subarray(passedFrom, passedTo)
    }
    pieces.push(input.subarray(passedFrom, passedTo))
    return Buffer.concat(pieces)
  }

  private clientFrame(type: number, flags: number, streamId: number): boolean {
    // Stream 0 is the connection; even ids are the server's (push), which clients never open.
    if ((streamId & 1) === 0) return true
    switch (type) {
      case frameType.headers:
        if (streamId > this.lastClientStream) {
          if (this.streams.size >= this.limit) return false
          this.lastClientStream = streamId
          this.streams.set(streamId, (flags & endStreamFlag) !== 0 ? clientEnded : 0)
        } else if ((flags & endStreamFlag) !== 0) {
          this.ended(streamId, clientEnded)
        }
        return true
      case frameType.data:
        if ((flags & endStreamFlag) !== 0) this.ended(streamId, clientEnded)
        return true
      case frameType.rstStream:
        this.streams.delete(streamId)
        return true
      default:
        return true
    }
  }

  private memberFrame(type: number, flags: number, streamId: number): void {
    if ((streamId & 1) === 0) return
    switch (type) {
      case frameType.headers:
      case frameType.data:
        if ((flags & endStreamFlag) !== 0) this.ended(streamId, memberEnded)
        return
      case frameType.rstStream:
        this.streams.delete(streamId)
        return
    }
  }

  private ended(streamId: number, side: number): void {
    const state = this.streams.get(streamId)
    if (state === undefined) return
    const next = state | side
    if (next === bothEnded) this.streams.delete(streamId)
    else this.streams.set(streamId, next)
  }
}
