/** A small forwarding HTTP proxy (absolute-form requests and CONNECT) that records what went through it. */
import { createServer, request, type IncomingMessage } from "node:http"
import { connect, type Socket } from "node:net"
import * as Effect from "effect/Effect"

export interface HttpProxy {
  readonly url: string
  /** Request targets seen, in order: absolute URLs, or `CONNECT host:port`. */
  readonly seen: () => ReadonlyArray<string>
}

export const startHttpProxy = Effect.acquireRelease(
  Effect.promise(
    () =>
      new Promise<{ proxy: HttpProxy; close: () => Promise<void> }>((resolve) => {
        const seen: Array<string> = []
        const tunnels = new Set<Socket>()
        const server = createServer((req: IncomingMessage, res) => {
          const target = req.url ?? ""
          seen.push(target)
          if (!/^https?:\/\//.test(target)) {
            res.writeHead(400).end("absolute-form request target expected")
            return
          }
          const upstream = request(
            target,
            { method: req.method, headers: { ...req.headers, connection: "close" } },
            (answer) => {
              res.writeHead(answer.statusCode ?? 502, answer.headers)
              answer.pipe(res)
            },
          )
          upstream.on("error", () => res.destroy())
          req.pipe(upstream)
          res.on("close", () => upstream.destroy())
        })
        server.on("connect", (req, socket, head) => {
          seen.push(`CONNECT ${req.url}`)
          const [host, port] = (req.url ?? "").split(":")
          tunnels.add(socket as Socket)
          socket.on("close", () => tunnels.delete(socket as Socket))
          const upstream = connect(Number(port), host ?? "127.0.0.1", () => {
            socket.write("HTTP/1.1 200 Connection Established\r\n\r\n")
            upstream.write(head)
            upstream.pipe(socket)
            socket.pipe(upstream)
          })
          upstream.on("error", () => socket.destroy())
          upstream.on("close", () => socket.destroy())
          socket.on("error", () => upstream.destroy())
          socket.on("close", () => upstream.destroy())
        })
        server.listen(0, "127.0.0.1", () => {
          const address = server.address() as { port: number }
          resolve({
            proxy: { url: `http://127.0.0.1:${address.port}`, seen: () => [...seen] },
            close: () =>
              new Promise<void>((done) => {
                for (const socket of tunnels) socket.destroy()
                server.closeAllConnections()
                server.close(() => done())
              }),
          })
        })
      }),
  ),
  ({ close }) => Effect.promise(close),
).pipe(Effect.map(({ proxy }) => proxy))
