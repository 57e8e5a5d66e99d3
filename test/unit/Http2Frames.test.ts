/** The relay's HTTP/2 frame-header reader: stream counting and the SETTINGS cap, on crafted frames. */
import { describe, expect, it } from "@effect/vitest"
import { randomBytes } from "node:crypto"
import {
  capConcurrentStreams,
  errorCode,
  frameHeader,
  frameType,
  goawayFrame,
  StreamTracker,
} from "../../src/services/request/Http2Frames.js"

const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1")
const END_STREAM = 0x1
const END_HEADERS = 0x4

const frame = (type: number, flags: number, streamId: number, payload = Buffer.alloc(0)) =>
  Buffer.concat([frameHeader(payload.length, type, flags, streamId), payload])

/** A HEADERS frame opening `streamId`; the header block is opaque to the tracker. */
const headers = (streamId: number, flags = END_HEADERS) =>
  frame(frameType.headers, flags, streamId, Buffer.from([0x83, 0x86, 0x84]))
const data = (streamId: number, flags = 0, length = 100) =>
  frame(frameType.data, flags, streamId, Buffer.alloc(length, 0x61))
const rst = (streamId: number) => frame(frameType.rstStream, 0, streamId, Buffer.alloc(4))

const settings = (entries: ReadonlyArray<readonly [number, number]>, flags = 0) => {
  const payload = Buffer.alloc(entries.length * 6)
  entries.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6)
    payload.writeUInt32BE(value, i * 6 + 2)
  })
  return frame(frameType.settings, flags, 0, payload)
}

/** The settings entries of every SETTINGS frame (not ACK) in a byte stream from the member. */
const settingsIn = (bytes: Buffer): Array<Array<[number, number]>> => {
  const found: Array<Array<[number, number]>> = []
  for (let at = 0; at + 9 <= bytes.length;) {
    const length = bytes.readUIntBE(at, 3)
    if (bytes[at + 3] === frameType.settings && (bytes[at + 4]! & 1) === 0) {
      const entries: Array<[number, number]> = []
      for (let e = at + 9; e < at + 9 + length; e += 6) {
        entries.push([bytes.readUInt16BE(e), bytes.readUInt32BE(e + 2)])
      }
      found.push(entries)
    }
    at += 9 + length
  }
  return found
}

/** Feeds `bytes` in pieces of `size` (the last may be shorter). */
const pieces = (bytes: Buffer, size: number): Array<Buffer> => {
  const out: Array<Buffer> = []
  for (let at = 0; at < bytes.length; at += size) out.push(bytes.subarray(at, at + size))
  return out
}

const fromMemberAll = (tracker: StreamTracker, chunks: ReadonlyArray<Buffer>): Buffer =>
  Buffer.concat(chunks.map((chunk) => tracker.fromMember(chunk)))

describe("StreamTracker: client streams", () => {
  it("skips the preface and counts a stream from HEADERS until both sides end it", () => {
    const tracker = new StreamTracker(10)
    expect(tracker.fromClient(Buffer.concat([preface, settings([]), headers(1)]))).toBe(true)
    expect(tracker.open).toBe(1)
    expect(tracker.fromClient(data(1, END_STREAM))).toBe(true)
    expect(tracker.open).toBe(1)
    tracker.fromMember(headers(1))
    tracker.fromMember(data(1))
    expect(tracker.open).toBe(1)
    tracker.fromMember(headers(1, END_HEADERS | END_STREAM))
    expect(tracker.open).toBe(0)
  })

  it("a member that ends first leaves the stream open until the client ends or resets it", () => {
    const tracker = new StreamTracker(10)
    tracker.fromClient(Buffer.concat([preface, headers(1), headers(3), headers(5)]))
    tracker.fromMember(Buffer.concat([headers(1, END_HEADERS | END_STREAM), data(3, END_STREAM)]))
    expect(tracker.open).toBe(3)
    tracker.fromClient(Buffer.concat([data(1, END_STREAM), rst(3)]))
    expect(tracker.open).toBe(1)
    tracker.fromMember(rst(5))
    expect(tracker.open).toBe(0)
  })

  it("HEADERS with END_STREAM, then trailers from the member, close a unary call", () => {
    const tracker = new StreamTracker(10)
    tracker.fromClient(Buffer.concat([preface, headers(1, END_HEADERS | END_STREAM)]))
    tracker.fromMember(Buffer.concat([headers(1), data(1), headers(1, END_HEADERS | END_STREAM)]))
    expect(tracker.open).toBe(0)
  })

  it("refuses the stream past the limit and names the last one accepted", () => {
    const tracker = new StreamTracker(3)
    expect(tracker.fromClient(Buffer.concat([preface, headers(1), headers(3), headers(5)]))).toBe(
      true,
    )
    expect(tracker.fromClient(headers(7))).toBe(false)
    expect(tracker.lastAccepted).toBe(5)
    expect(tracker.open).toBe(3)
  })

  it("streams that end free their place: 3,000 open-and-reset streams never pass a limit of 2", () => {
    const tracker = new StreamTracker(2)
    const flood: Array<Buffer> = [preface]
    for (let i = 0; i < 3_000; i++) flood.push(headers(1 + 2 * i), rst(1 + 2 * i))
    expect(tracker.fromClient(Buffer.concat(flood))).toBe(true)
    expect(tracker.open).toBe(0)
  })

  it("reads frame headers split anywhere across chunks, one byte at a time included", () => {
    const bytes = Buffer.concat([
      preface,
      settings([[4, 0]]),
      headers(1),
      data(1, 0, 20_000),
      headers(3),
      data(1, END_STREAM, 7),
      headers(5, END_HEADERS | END_STREAM),
    ])
    for (const size of [1, 2, 5, 9, 10, 17, 4_096]) {
      const tracker = new StreamTracker(10)
      for (const chunk of pieces(bytes, size)) expect(tracker.fromClient(chunk)).toBe(true)
      expect(tracker.open).toBe(3)
      expect(tracker.lastAccepted).toBe(5)
    }
  })

  it("ignores the connection's stream 0 and even (server) stream ids", () => {
    const tracker = new StreamTracker(1)
    tracker.fromClient(Buffer.concat([preface, headers(2), headers(4), data(0, END_STREAM)]))
    expect(tracker.open).toBe(0)
  })

  it("random bytes after the preface never throw and never hold more than the limit", () => {
    for (let round = 0; round < 50; round++) {
      const tracker = new StreamTracker(4)
      const bytes = Buffer.concat([preface, randomBytes(4_096)])
      for (const chunk of pieces(bytes, 1 + (round % 13))) {
        if (!tracker.fromClient(chunk)) break
        tracker.fromMember(randomBytes(chunk.length))
      }
      expect(tracker.open).toBeLessThanOrEqual(4)
    }
  })
})

describe("StreamTracker: the member's SETTINGS", () => {
  it("lowers a larger MAX_CONCURRENT_STREAMS and keeps the other settings", () => {
    const tracker = new StreamTracker(256)
    const out = tracker.fromMember(
      settings([
        [5, 16_384],
        [3, 4_294_967_295],
      ]),
    )
    expect(settingsIn(out)).toEqual([
      [
        [5, 16_384],
        [3, 256],
      ],
    ])
  })

  it("keeps a smaller MAX_CONCURRENT_STREAMS, and passes that chunk as the same Buffer", () => {
    const tracker = new StreamTracker(256)
    const chunk = Buffer.concat([settings([[3, 100]]), headers(1), data(1, 0, 50)])
    const out = tracker.fromMember(chunk)
    expect(settingsIn(out)).toEqual([[[3, 100]]])
    expect(out.equals(chunk)).toBe(true)
  })

  it("adds MAX_CONCURRENT_STREAMS to SETTINGS that had none (etcd 3.4 sends none)", () => {
    const tracker = new StreamTracker(256)
    expect(settingsIn(tracker.fromMember(settings([[5, 16_384]])))).toEqual([
      [
        [5, 16_384],
        [3, 256],
      ],
    ])
    expect(settingsIn(new StreamTracker(7).fromMember(settings([])))).toEqual([[[3, 7]]])
  })

  it("leaves a SETTINGS ACK, and the frames around a rewritten SETTINGS, unchanged", () => {
    const tracker = new StreamTracker(256)
    const ack = settings([], 1)
    const before = data(1, 0, 30)
    const after = Buffer.concat([headers(1), data(1, END_STREAM, 3)])
    const out = tracker.fromMember(Buffer.concat([before, settings([[5, 16_384]]), ack, after]))
    expect(out.subarray(0, before.length).equals(before)).toBe(true)
    expect(
      out.subarray(out.length - ack.length - after.length).equals(Buffer.concat([ack, after])),
    ).toBe(true)
    expect(out.length).toBe(
      before.length + settings([[5, 16_384]]).length + 6 + ack.length + after.length,
    )
  })

  it("rewrites a SETTINGS frame split across chunks, holding back only what is incomplete", () => {
    const bytes = Buffer.concat([
      headers(1),
      data(1, 0, 1_000),
      settings([
        [3, 1_000],
        [4, 65_535],
      ]),
      data(1, END_STREAM, 10),
    ])
    const expected = settingsIn(new StreamTracker(256).fromMember(bytes))
    expect(expected).toEqual([
      [
        [3, 256],
        [4, 65_535],
      ],
    ])
    for (const size of [1, 3, 8, 9, 10, 11, 500, 1_010, 1_020]) {
      const tracker = new StreamTracker(256)
      const out = fromMemberAll(tracker, pieces(bytes, size))
      expect(settingsIn(out)).toEqual(expected)
      expect(out.length).toBe(bytes.length)
      expect(tracker.atMemberFrameBoundary).toBe(true)
    }
  })

  it("knows whether the bytes passed so far end on a frame boundary", () => {
    const tracker = new StreamTracker(256)
    tracker.fromMember(data(1, 0, 100).subarray(0, 50))
    expect(tracker.atMemberFrameBoundary).toBe(false)
    tracker.fromMember(data(1, 0, 100).subarray(50))
    expect(tracker.atMemberFrameBoundary).toBe(true)
  })
})

describe("frames the relay writes itself", () => {
  it("GOAWAY carries the last stream id, the error code and the reason", () => {
    const goaway = goawayFrame(511, errorCode.enhanceYourCalm, "too many")
    expect(goaway.readUIntBE(0, 3)).toBe(8 + 8)
    expect(goaway[3]).toBe(frameType.goaway)
    expect(goaway.readUInt32BE(5)).toBe(0)
    expect(goaway.readUInt32BE(9)).toBe(511)
    expect(goaway.readUInt32BE(13)).toBe(0xb)
    expect(goaway.subarray(17).toString()).toBe("too many")
  })

  it("a SETTINGS payload that is not whole entries is passed on as it is", () => {
    const odd = frame(frameType.settings, 0, 0, Buffer.alloc(5))
    expect(capConcurrentStreams(odd, 1)).toBe(odd)
  })
})
