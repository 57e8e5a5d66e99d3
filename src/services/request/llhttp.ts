/**
 * Node's own HTTP/1.1 parser (llhttp, the one node:http uses), reached through
 * `node:_http_common`, present with the same interface from Node 20 to 24. Strict: no lenient
 * flags, so it refuses every smuggling shape Node's server refuses (SPEC §3.11).
 */
import { createRequire } from "node:module"

/** The callbacks llhttp makes, by the slot numbers Node's binding reads them from. */
export interface ParserCallbacks {
  /** A message starts (its first byte arrived). */
  onMessageBegin: () => void
  /** Header lines of a head too large for one batch, delivered before `onHeadersComplete`. */
  onHeaders: (headers: Array<string>, url: string) => void
  /**
   * The head is complete. `headers` is the flat `[name, value, ...]` list (undefined when it
   * came through `onHeaders`); `method` indexes `methodNames`. Return 1 to have the body skipped
   * (a response to HEAD), 0 otherwise.
   */
  onHeadersComplete: (
    versionMajor: number,
    versionMinor: number,
    headers: Array<string> | undefined,
    method: number | undefined,
    url: string | undefined,
    statusCode: number | undefined,
    statusMessage: string | undefined,
    upgrade: boolean,
    shouldKeepAlive: boolean,
  ) => number
  /** A piece of the decoded body (chunk framing removed). */
  onBody: (chunk: Buffer) => void
  onMessageComplete: () => void
}

/** What `execute` returns when the bytes are not HTTP: llhttp's code and reason. */
export interface ParseError extends Error {
  readonly code: string
  readonly reason: string
  readonly bytesParsed: number
}

export interface Parser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void
  execute(data: Buffer): number | ParseError
  finish(): ParseError | undefined
  close(): void
  [slot: number]: unknown
}

interface ParserModule {
  readonly HTTPParser: {
    new (): Parser
    readonly REQUEST: number
    readonly RESPONSE: number
    readonly kOnMessageBegin: number
    readonly kOnHeaders: number
    readonly kOnHeadersComplete: number
    readonly kOnBody: number
    readonly kOnMessageComplete: number
    readonly kLenientNone: number
  }
}

const { HTTPParser } = createRequire(import.meta.url)("_http_common") as ParserModule

/**
 * llhttp's method numbers (its `llhttp_method_t`), what `onHeadersComplete` reports; Node names
 * them with its internal `allMethods`. `_http_common`'s `methods` is another list, HTTP methods
 * only and without `PRI`: from number 34 on it names the wrong method (`QUERY` came out `GET`).
 */
export const methodNames: ReadonlyArray<string> = [
  "DELETE",
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "CONNECT",
  "OPTIONS",
  "TRACE",
  "COPY",
  "LOCK",
  "MKCOL",
  "MOVE",
  "PROPFIND",
  "PROPPATCH",
  "SEARCH",
  "UNLOCK",
  "BIND",
  "REBIND",
  "UNBIND",
  "ACL",
  "REPORT",
  "MKACTIVITY",
  "CHECKOUT",
  "MERGE",
  "M-SEARCH",
  "NOTIFY",
  "SUBSCRIBE",
  "UNSUBSCRIBE",
  "PATCH",
  "PURGE",
  "MKCALENDAR",
  "LINK",
  "UNLINK",
  "SOURCE",
  "PRI",
  "DESCRIBE",
  "ANNOUNCE",
  "SETUP",
  "PLAY",
  "PAUSE",
  "TEARDOWN",
  "GET_PARAMETER",
  "SET_PARAMETER",
  "REDIRECT",
  "RECORD",
  "FLUSH",
  "QUERY",
]

/** Largest request head accepted, as Node's server (`--max-http-header-size`); past it 431. */
export const maxHeadBytes = 16_384

const asyncResource = {}

/** A strict parser for requests (`"request"`) or responses (`"response"`), with its callbacks bound. */
export const makeParser = (kind: "request" | "response", callbacks: ParserCallbacks): Parser => {
  const parser = new HTTPParser()
  parser.initialize(
    kind === "request" ? HTTPParser.REQUEST : HTTPParser.RESPONSE,
    asyncResource,
    maxHeadBytes,
    HTTPParser.kLenientNone,
  )
  parser[HTTPParser.kOnMessageBegin] = callbacks.onMessageBegin
  parser[HTTPParser.kOnHeaders] = callbacks.onHeaders
  parser[HTTPParser.kOnHeadersComplete] = callbacks.onHeadersComplete
  parser[HTTPParser.kOnBody] = callbacks.onBody
  parser[HTTPParser.kOnMessageComplete] = callbacks.onMessageComplete
  return parser
}

export const isParseError = (result: unknown): result is ParseError => result instanceof Error
