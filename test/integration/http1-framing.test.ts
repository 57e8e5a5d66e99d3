/**
 * HTTP/1.1 framing on the lean data path, byte for byte (SPEC §3.11): what a real client may
 * send is served, and every smuggling shape is refused with 400 and a closed connection before
 * anything reaches a member. Raw sockets send exactly the bytes under test; a real etcd member
 * is behind the proxy, and what it stored is read straight from it.
 */
import { connect } from "node:net"
import { describe, expect, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { EtcdCluster } from "../support/cluster.js"
import { call, form, json } from "../support/http.js"
import { startProxy, type ProxyProcess } from "../support/proxy.js"

interface Conversation {
  /** Everything the proxy sent. */
  readonly text: string
  /** The proxy closed the connection (rather than the test giving up waiting). */
  readonly closed: boolean
}

/**
 * Sends `parts` (each after `gapMs`) on one connection and collects the answer until the proxy
 * closes it or `idleMs` pass without a byte.
 */
const converse = (
  port: number,
  parts: ReadonlyArray<string | Buffer>,
  options: { idleMs?: number; gapMs?: number; endAfter?: boolean } = {},
): Effect.Effect<Conversation> =>
  Effect.promise(
    () =>
      new Promise<Conversation>((resolve) => {
        const idleMs = options.idleMs ?? 1_500
        const chunks: Array<Buffer> = []
        let closed = false
        let timer: NodeJS.Timeout | undefined
        const socket = connect(port, "127.0.0.1")
        const finish = () => {
          clearTimeout(timer)
          socket.destroy()
          resolve({ text: Buffer.concat(chunks).toString("latin1"), closed })
        }
        const arm = () => {
          clearTimeout(timer)
          timer = setTimeout(finish, idleMs)
        }
        socket.on("connect", async () => {
          for (const part of parts) {
            socket.write(part)
            if (options.gapMs !== undefined) await new Promise((r) => setTimeout(r, options.gapMs))
          }
          if (options.endAfter === true) socket.end()
          arm()
        })
        socket.on("data", (chunk: Buffer) => {
          chunks.push(chunk)
          arm()
        })
        socket.on("end", () => {
          closed = true
          finish()
        })
        socket.on("error", () => {
          closed = true
          finish()
        })
      }),
  )

const statuses = (text: string): Array<number> =>
  [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]))

/** A key's value straight from the member, or undefined when it does not exist. */
const memberValue = (member: string, key: string) =>
  Effect.map(call(`${member}/v2/keys/${key}`), (answer) =>
    answer.status === 200 ? (json(answer) as { node: { value: string } }).node.value : undefined,
  )

const put = (key: string, value: string, extra = "") =>
  `PUT /v2/keys/${key} HTTP/1.1\r\nHost: p\r\nContent-Type: application/x-www-form-urlencoded\r\n${extra}Content-Length: ${`value=${value}`.length}\r\n\r\nvalue=${value}`

/** One member, and a read-write and a read-only proxy in front of it, shared by the tests. */
class Proxies extends Context.Tag("test/Proxies")<
  Proxies,
  { readonly on: ProxyProcess; readonly readonly: ProxyProcess; readonly member: string }
>() {
  static readonly layer = Layer.scoped(
    Proxies,
    Effect.gen(function* () {
      const cluster = yield* EtcdCluster
      const start = (mode: string) =>
        startProxy({ args: ["--initial-cluster", cluster.initialCluster, "--proxy", mode] })
      const [on, readonly] = yield* Effect.all([start("on"), start("readonly")], {
        concurrency: 2,
      })
      return { on, readonly, member: cluster.clientUrls()[0]! }
    }),
  ).pipe(Layer.provide(EtcdCluster.layer({ size: 1 })))
}

layer(Proxies.layer, { timeout: 90_000, excludeTestServices: true })("HTTP/1.1 framing", (it) => {
  const proxies = (mode: "on" | "readonly") =>
    Effect.map(Proxies, (all) => ({
      proxy: mode === "on" ? all.on : all.readonly,
      member: all.member,
    }))

  describe("what real clients send is served", () => {
    it.scoped("pipelined requests are answered in order on one connection", () =>
      Effect.gen(function* () {
        const { proxy, member } = yield* proxies("on")
        yield* call(`${member}/v2/keys/pipe/a`, {
          method: "PUT",
          body: "value=A",
          headers: form({}),
        })
        yield* call(`${member}/v2/keys/pipe/b`, {
          method: "PUT",
          body: "value=B",
          headers: form({}),
        })
        const get = (key: string) => `GET /v2/keys/pipe/${key} HTTP/1.1\r\nHost: p\r\n\r\n`
        const answer = yield* converse(proxy.port, [
          get("a") + get("b") + put("pipe/c", "C") + get("c") + get("a"),
        ])
        expect(statuses(answer.text)).toEqual([200, 200, 201, 200, 200])
        const values = [...answer.text.matchAll(/"value":"(\w)"/g)].map((m) => m[1])
        expect(values).toEqual(["A", "B", "C", "C", "A"])
        expect(answer.closed).toBe(false)
      }),
    )

    it.scoped("HTTP/1.0: answered and closed; with keep-alive the connection stays", () =>
      Effect.gen(function* () {
        const { proxy, member } = yield* proxies("on")
        yield* call(`${member}/v2/keys/old`, {
          method: "PUT",
          body: "value=v",
          headers: form({}),
        })
        const plain = yield* converse(proxy.port, ["GET /v2/keys/old HTTP/1.0\r\n\r\n"])
        expect(statuses(plain.text)).toEqual([200])
        expect(plain.text).toContain('"value":"v"')
        expect(plain.closed).toBe(true)

        const kept = yield* converse(proxy.port, [
          "GET /v2/keys/old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" +
            "GET /v2/keys/old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        ])
        expect(statuses(kept.text)).toEqual([200, 200])
        expect(kept.text).toMatch(/connection: keep-alive/i)
        expect(kept.text).not.toMatch(/transfer-encoding/i)
        expect(kept.closed).toBe(false)
      }),
    )

    it.scoped("HTTP/1.0 gets a long poll's chunked answer unchunked, then the close", () =>
      Effect.gen(function* () {
        const { proxy, member } = yield* proxies("on")
        const poll = converse(proxy.port, ["GET /v2/keys/old10?wait=true HTTP/1.0\r\n\r\n"], {
          idleMs: 10_000,
        })
        const write = Effect.gen(function* () {
          yield* Effect.sleep("1 second")
          yield* call(`${member}/v2/keys/old10`, {
            method: "PUT",
            body: "value=event",
            headers: form({}),
          })
        })
        const [answer] = yield* Effect.all([poll, write], { concurrency: 2 })
        expect(statuses(answer.text)).toEqual([200])
        const body = answer.text.slice(answer.text.indexOf("\r\n\r\n") + 4)
        expect(JSON.parse(body)).toMatchObject({ action: "set", node: { value: "event" } })
        expect(answer.closed).toBe(true)
      }),
    )

    it.scoped("Connection: close is honoured and said in the answer", () =>
      Effect.gen(function* () {
        const { proxy } = yield* proxies("on")
        const answer = yield* converse(proxy.port, [
          "GET /v2/keys/ HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\nGET /v2/keys/ HTTP/1.1\r\nHost: p\r\n\r\n",
        ])
        expect(statuses(answer.text)).toEqual([200])
        expect(answer.text).toMatch(/connection: close/i)
        expect(answer.closed).toBe(true)
      }),
    )

    it.scoped("a chunked request body, in pieces, arrives whole", () =>
      Effect.gen(function* () {
        const { proxy, member } = yield* proxies("on")
        const answer = yield* converse(
          proxy.port,
          [
            "PUT /v2/keys/chunked HTTP/1.1\r\nHost: p\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n",
            "6\r\nvalue=\r\n",
            "5;ext=1\r\nhello\r\n",
            "6\r\n-world\r\n0\r\n\r\n",
          ],
          { gapMs: 100 },
        )
        expect(statuses(answer.text)).toEqual([201])
        expect(yield* memberValue(member, "chunked")).toBe("hello-world")
      }),
    )

    it.scoped(
      "Content-Length bodies split anywhere, with empty lines and the next request in the same write",
      () =>
        Effect.gen(function* () {
          const { proxy, member } = yield* proxies("on")
          const first = put("split/a", "first-value")
          const second = put("split/b", "second-value")
          const cut = first.indexOf("value=first") + 3
          const headCut = second.indexOf("Content-Type") + 5
          const answer = yield* converse(
            proxy.port,
            [
              first.slice(0, cut),
              first.slice(cut, cut + 4),
              first.slice(cut + 4) + "\r\n\r\n" + second.slice(0, headCut),
              second.slice(headCut) + "GET /v2/keys/split/a HTTP/1.1\r\nHost: p\r\n\r\n",
            ],
            { gapMs: 100 },
          )
          expect(statuses(answer.text)).toEqual([201, 201, 200])
          expect(yield* memberValue(member, "split/a")).toBe("first-value")
          expect(yield* memberValue(member, "split/b")).toBe("second-value")
          expect(answer.text).toContain('"value":"first-value"')
        }),
    )

    it.scoped("a head sent a byte at a time is still one request", () =>
      Effect.gen(function* () {
        const { proxy } = yield* proxies("on")
        const request = "GET /v2/keys/ HTTP/1.1\r\nHost: p\r\n\r\n"
        const answer = yield* converse(proxy.port, request.split(""), { gapMs: 5 })
        expect(statuses(answer.text)).toEqual([200])
      }),
    )

    it.scoped("an h2c upgrade offer is ignored: the answer comes over HTTP/1.1", () =>
      Effect.gen(function* () {
        const { proxy } = yield* proxies("on")
        const answer = yield* converse(proxy.port, [
          "GET /version HTTP/1.1\r\nHost: p\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n" +
            "GET /version HTTP/1.1\r\nHost: p\r\n\r\n",
        ])
        expect(statuses(answer.text)).toEqual([200, 200])
        expect(answer.text).toContain("etcdserver")
      }),
    )
  })

  describe("what smuggles or breaks framing gets 400 and a closed connection, nothing forwarded", () => {
    const refused: ReadonlyArray<readonly [string, (key: string) => string]> = [
      [
        "Content-Length and Transfer-Encoding",
        (key) =>
          `PUT /v2/keys/${key} HTTP/1.1\r\nHost: p\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n7\r\nvalue=x\r\n0\r\n\r\n`,
      ],
      [
        "Content-Length twice, equal",
        (key) =>
          `PUT /v2/keys/${key} HTTP/1.1\r\nHost: p\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\nvalue=x`,
      ],
      [
        "Transfer-Encoding: chunked, identity",
        (key) =>
          `PUT /v2/keys/${key} HTTP/1.1\r\nHost: p\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked, identity\r\n\r\n7\r\nvalue=x\r\n0\r\n\r\n`,
      ],
      [
        "Transfer-Encoding: gzip, chunked (a coding the proxy would lose)",
        (key) =>
          `PUT /v2/keys/${key} HTTP/1.1\r\nHost: p\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: gzip, chunked\r\n\r\n7\r\nvalue=x\r\n0\r\n\r\n`,
      ],
      ["obs-fold", (key) => put(key, "x", "X-Folded: a\r\n b\r\n")],
      ["a bare LF line end", (key) => put(key, "x").replace("Host: p\r\n", "Host: p\n")],
      ["a bare CR in a value", (key) => put(key, "x", "X-Bad: a\rb\r\n")],
      ["a space before the colon", (key) => put(key, "x").replace("Host: p", "Host : p")],
      ["an invalid character in a name", (key) => put(key, "x", "X(Bad): a\r\n")],
      ["a control character in a value", (key) => put(key, "x", "X-Bad: a\u0001b\r\n")],
      [
        "a bad chunk size",
        (key) =>
          `PUT /v2/keys/${key} HTTP/1.1\r\nHost: p\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nvalue=x\r\n0\r\n\r\n`,
      ],
      ["HTTP/1.1 without Host", (key) => put(key, "x").replace("Host: p\r\n", "")],
      ["an unknown method", (key) => `FROB /v2/keys/${key} HTTP/1.1\r\nHost: p\r\n\r\n`],
      ["CONNECT", () => "CONNECT 127.0.0.1:2379 HTTP/1.1\r\nHost: 127.0.0.1:2379\r\n\r\n"],
    ]
    for (const [shape, bytes] of refused) {
      it.scoped(shape, () =>
        Effect.gen(function* () {
          const { proxy, member } = yield* proxies("on")
          const key = `smuggle-${shape.replace(/\W+/g, "-")}`
          // A harmless request first: it is answered; what follows is refused and closes.
          const answer = yield* converse(proxy.port, [
            "GET /version HTTP/1.1\r\nHost: p\r\n\r\n" + bytes(key) + put(`${key}-after`, "y"),
          ])
          expect(statuses(answer.text), answer.text).toEqual([200, 400])
          expect(answer.text).toMatch(/HTTP\/1\.1 400 Bad Request\r\nConnection: close\r\n/)
          expect(answer.closed).toBe(true)
          expect(yield* memberValue(member, key)).toBeUndefined()
          expect(yield* memberValue(member, `${key}-after`)).toBeUndefined()
        }),
      )
    }

    it.scoped("a head over 16 KiB gets 431 and a closed connection", () =>
      Effect.gen(function* () {
        const { proxy, member } = yield* proxies("on")
        const answer = yield* converse(proxy.port, [
          put("too-big-head", "x", `X-Big: ${"a".repeat(17_000)}\r\n`),
        ])
        expect(statuses(answer.text)).toEqual([431])
        expect(answer.closed).toBe(true)
        expect(yield* memberValue(member, "too-big-head")).toBeUndefined()
        // Just under the limit is fine.
        const fits = yield* converse(proxy.port, [
          put("big-head", "x", `X-Big: ${"a".repeat(15_000)}\r\n`),
        ])
        expect(statuses(fits.text)).toEqual([201])
      }),
    )

    it.scoped("HTTP/2 request lines that are not the preface get 505 at once", () =>
      Effect.gen(function* () {
        const { proxy } = yield* proxies("on")
        const pri = yield* converse(proxy.port, ["PRI / HTTP/2.0\r\n\r\n"])
        expect(statuses(pri.text)).toEqual([505])
        expect(pri.closed).toBe(true)
        const version = yield* converse(proxy.port, ["GET /version HTTP/2.0\r\nHost: p\r\n\r\n"])
        expect(statuses(version.text)).toEqual([505])
        expect(version.closed).toBe(true)
      }),
    )
  })

  describe("odd but legal requests keep their meaning", () => {
    it.scoped("a chunked body's trailers stay with it: the next request keeps its own target", () =>
      Effect.gen(function* () {
        const { proxy, member } = yield* proxies("on")
        const answer = yield* converse(proxy.port, [
          "PUT /v2/keys/trailed HTTP/1.1\r\nHost: p\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n" +
            "7;ext=1\r\nvalue=t\r\n0\r\nX-Trailer: t\r\n\r\n" +
            "GET /version HTTP/1.1\r\nHost: p\r\n\r\n",
        ])
        expect(statuses(answer.text), answer.text).toEqual([201, 200])
        expect(answer.text).toContain("etcdserver")
        expect(yield* memberValue(member, "trailed")).toBe("t")
      }),
    )

    it.scoped("a method past llhttp's HTTP list (QUERY) reaches the member as itself", () =>
      Effect.gen(function* () {
        const { proxy } = yield* proxies("on")
        // The member refuses any method but GET on /version; forwarded as GET it would be 200.
        const answer = yield* converse(proxy.port, [
          "QUERY /version HTTP/1.1\r\nHost: p\r\n\r\nGET /version HTTP/1.1\r\nHost: p\r\n\r\n",
        ])
        expect(statuses(answer.text), answer.text).toEqual([405, 200])
        const readonly = yield* proxies("readonly")
        const refused = yield* converse(readonly.proxy.port, [
          "QUERY /version HTTP/1.1\r\nHost: p\r\n\r\n",
        ])
        expect(statuses(refused.text)).toEqual([501])
        expect(refused.text).toContain("read-only proxy refuses QUERY /version")
      }),
    )

    it.scoped("an expectation other than 100-continue gets 417 as from Node's server", () =>
      Effect.gen(function* () {
        const { proxy, member } = yield* proxies("on")
        const answer = yield* converse(proxy.port, [
          "GET /version HTTP/1.1\r\nHost: p\r\nExpect: something-else\r\n\r\n" +
            put("expect-other", "x", "Expect: x-other\r\n") +
            "GET /version HTTP/1.1\r\nHost: p\r\n\r\n",
        ])
        expect(statuses(answer.text), answer.text).toEqual([417, 417, 200])
        expect(answer.closed).toBe(false)
        expect(yield* memberValue(member, "expect-other")).toBeUndefined()
        // HTTP/1.0 has no expectations (Node ignores them): served.
        const old = yield* converse(proxy.port, [
          "GET /version HTTP/1.0\r\nExpect: something-else\r\n\r\n",
        ])
        expect(statuses(old.text)).toEqual([200])
      }),
    )
  })

  describe("read-only: a refused request never reaches a member, however it is wrapped", () => {
    it.scoped("a PUT pipelined behind a GET gets 501; the GET is served", () =>
      Effect.gen(function* () {
        const { proxy, member } = yield* proxies("readonly")
        const answer = yield* converse(proxy.port, [
          "GET /version HTTP/1.1\r\nHost: p\r\n\r\n" +
            put("ro-pipelined", "x") +
            "GET /version HTTP/1.1\r\nHost: p\r\n\r\n",
        ])
        expect(statuses(answer.text)).toEqual([200, 501, 200])
        expect(answer.text).toContain("read-only proxy refuses PUT /v2/keys/ro-pipelined")
        expect(yield* memberValue(member, "ro-pipelined")).toBeUndefined()
      }),
    )

    it.scoped("a PUT inside a GET's body stays a body; a CL.TE smuggle is refused", () =>
      Effect.gen(function* () {
        const { proxy, member } = yield* proxies("readonly")
        const hidden = put("ro-hidden", "x")
        const inBody = yield* converse(proxy.port, [
          `GET /version HTTP/1.1\r\nHost: p\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}`,
        ])
        expect(statuses(inBody.text)).toEqual([200])
        const clte = yield* converse(proxy.port, [
          `POST /v3/kv/range HTTP/1.1\r\nHost: p\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${hidden}`,
        ])
        expect(statuses(clte.text)).toEqual([400])
        expect(yield* memberValue(member, "ro-hidden")).toBeUndefined()
      }),
    )

    it.scoped("Expect: 100-continue on a refused write: the refusal, no 100, and a close", () =>
      Effect.gen(function* () {
        const { proxy } = yield* proxies("readonly")
        const answer = yield* converse(proxy.port, [
          "PUT /v2/keys/ro-expect HTTP/1.1\r\nHost: p\r\nExpect: 100-continue\r\nContent-Length: 7\r\n\r\n",
        ])
        expect(statuses(answer.text)).toEqual([501])
        expect(answer.text).not.toContain("100 Continue")
        expect(answer.closed).toBe(true)
      }),
    )
  })
})
