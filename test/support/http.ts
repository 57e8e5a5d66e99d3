/** Small HTTP helpers for integration tests, as Effects. */
import { connect } from "node:net"
import * as Effect from "effect/Effect"
import { request } from "undici"

export interface Answer {
  readonly status: number
  readonly headers: Record<string, string | string[] | undefined>
  readonly body: string
}

export const call = (
  url: string,
  options: { method?: string; body?: string | Buffer; headers?: Record<string, string> } = {},
): Effect.Effect<Answer> =>
  Effect.promise(async () => {
    const response = await request(url, {
      method: (options.method ?? "GET") as "GET",
      ...(options.body === undefined ? {} : { body: options.body }),
      ...(options.headers === undefined ? {} : { headers: options.headers }),
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    })
    const body = await response.body.text()
    return { status: response.statusCode, headers: response.headers, body }
  })

export const json = (answer: Answer): unknown => JSON.parse(answer.body)

/** Sends raw bytes on a new connection and collects everything until the server closes or `ms` pass. */
export const rawExchange = (port: number, bytes: string, ms = 2_000): Effect.Effect<string> =>
  Effect.promise(
    () =>
      new Promise<string>((resolve) => {
        let received = ""
        const socket = connect(port, "127.0.0.1", () => socket.write(bytes))
        const timer = setTimeout(() => socket.destroy(), ms)
        socket.on("data", (chunk) => (received += chunk.toString()))
        socket.on("close", () => {
          clearTimeout(timer)
          resolve(received)
        })
        socket.on("error", () => undefined)
      }),
  )

export const form = (fields: Record<string, string>): Record<string, string> => ({
  "content-type": "application/x-www-form-urlencoded",
  ...fields,
})

export const b64 = (text: string): string => Buffer.from(text).toString("base64")
