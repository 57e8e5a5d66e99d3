/**
 * What happens to a request (SPEC §3): the node:http listeners and an undici pool per endpoint.
 * The hot path is plain callbacks reading the member list's snapshot synchronously; Effect
 * runs the lifecycle around it, never a fiber per request.
 */
import * as http from "node:http"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Runtime from "effect/Runtime"
import { Client, Pool, type Dispatcher } from "undici"
import { ProxyConfig } from "../../domain/Config.js"
import type { Endpoint, EndpointTable } from "../../domain/Endpoints.js"
import {
  BadRequest,
  BadRequestTarget,
  EndpointsExhausted,
  httpAnswer,
  RequestTooLarge,
  SentNotRetried,
  ZeroEndpoints,
  type ProxyRefusal,
} from "../../domain/Errors.js"
import {
  appendForwardedFor,
  clientAddress,
  endToEnd,
  hasContentLength,
  requestDrop,
  corsResponseDrop,
  responseDrop,
} from "../../domain/Headers.js"
import { Discovery } from "../cluster/Discovery.js"
import { MemberList } from "../cluster/MemberList.js"
import { Metrics, type DropReason } from "../Metrics.js"
import { ModeGuard } from "./ModeGuard.js"
import { ProxyIdentity } from "./ProxyIdentity.js"
import { RequestGate } from "./RequestGate.js"
import { TlsMaterial } from "../TlsMaterial.js"
import { awaitClosed } from "./drain.js"

export const configPath = "/v2/config/local/proxy"
export const metricsPath = "/metrics"

/** Upper bounds that hold whatever the members advertise (SPEC §5.6). */
export const limits = {
  /** Sockets per endpoint: enough for thousands of open watches, far below the fd limit. */
  connectionsPerEndpoint: 4_096,
  /** Connections kept for the next long poll per endpoint, after a long poll got its event. */
  idleWatchConnections: 256,
  /** Requests held at once; past it the proxy answers 503 instead of growing. */
  inFlight: 16_384,
  /** How long in-flight requests may finish on shutdown before the rest are cut. */
  drain: Duration.seconds(5),
} as const

const bodylessMethods: ReadonlySet<string> = new Set(["GET", "HEAD", "DELETE", "OPTIONS"])

/** A request the proxy holds: long polls and streams are watches, closed first on shutdown. */
interface InFlight {
  readonly res: http.ServerResponse
  readonly watch: boolean
}

/**
 * Errors undici raises about the request itself (a header it refuses, a malformed value):
 * the client's fault, answered 400; the endpoint stays available.
 */
const requestErrorCodes: ReadonlySet<string> = new Set([
  "UND_ERR_INVALID_ARG",
  "UND_ERR_NOT_SUPPORTED",
  "ERR_INVALID_CHAR",
  "ERR_INVALID_ARG_TYPE",
  "ERR_INVALID_ARG_VALUE",
  "ERR_HTTP_INVALID_HEADER_VALUE",
])
const isInvalidRequest = (error: Error & { code?: string }): boolean =>
  error.code !== undefined && requestErrorCodes.has(error.code)

const joined = (value: string | ReadonlyArray<string> | undefined): string | undefined =>
  typeof value === "string" ? value : value?.join(", ")

const errorTag = (error: Error & { code?: string }): string => error.code ?? error.name

export class Forwarder extends Effect.Service<Forwarder>()("etcd-proxy/Forwarder", {
  scoped: Effect.gen(function* () {
    const config = yield* ProxyConfig
    const members = yield* MemberList
    const guard = yield* ModeGuard
    const discovery = yield* Discovery
    const metrics = yield* Metrics
    const tls = yield* TlsMaterial
    const runtime = yield* Effect.runtime<never>()
    const identity = yield* ProxyIdentity
    const gate = yield* RequestGate
    const readMs = Duration.toMillis(config.readTimeout)
    const dialMs = Duration.toMillis(config.dialTimeout)
    const maxBody = config.maxRequestBytes
    const corsOrigins = new Set(config.cors)

    // --- upstream pools -----------------------------------------------------------------
    const clientOptions = {
      headersTimeout: readMs,
      bodyTimeout: readMs,
      connect: { timeout: dialMs, noDelay: true, ...tls.towardsMembers },
    }
    const pools = new Map<string, Pool>()
    const poolFor = (endpoint: Endpoint): Pool => {
      let pool = pools.get(endpoint.key)
      if (pool === undefined) {
        pool = new Pool(endpoint.key, {
          ...clientOptions,
          connections: limits.connectionsPerEndpoint,
          pipelining: 1,
          keepAliveTimeout: 30_000,
          keepAliveMaxTimeout: 600_000,
        })
        pools.set(endpoint.key, pool)
      }
      return pool
    }
    /**
     * A watch gets a connection of its own: cancelling a pooled request makes undici dial a
     * spare socket that would then sit idle, one per watch a client left. A watch that ends
     * normally (a long poll that got its event) hands its connection to the next watch; one a
     * client left is destroyed with its socket.
     */
    const idleWatchClients = new Map<string, Array<Client>>()
    const takeWatchClient = (endpoint: Endpoint): Client =>
      idleWatchClients.get(endpoint.key)?.pop() ?? new Client(endpoint.key, clientOptions)
    const keepWatchClient = (endpoint: Endpoint, client: Client): void => {
      let idle = idleWatchClients.get(endpoint.key)
      if (idle === undefined) {
        idle = []
        idleWatchClients.set(endpoint.key, idle)
      }
      if (idle.length < limits.idleWatchConnections && pools.has(endpoint.key)) idle.push(client)
      else void client.close()
    }
    members.onChange((table: EndpointTable) => {
      for (const [key, pool] of pools) {
        if (table.get(key) === undefined) {
          pools.delete(key)
          void pool.close().catch(() => pool.destroy())
          for (const client of idleWatchClients.get(key) ?? []) void client.close()
          idleWatchClients.delete(key)
        }
      }
    })

    // --- the request path ---------------------------------------------------------------
    const inFlight = new Set<InFlight>()
    let roundRobin = 0

    const refuse = (res: http.ServerResponse, refusal: ProxyRefusal, close = false): void => {
      const { status, body } = httpAnswer(refusal)
      if (res.headersSent) {
        res.destroy()
        return
      }
      res.writeHead(status, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
        ...(close ? { connection: "close" } : {}),
      })
      res.end(body)
    }

    const drop = (
      res: http.ServerResponse,
      method: string,
      reason: DropReason,
      refusal: ProxyRefusal,
    ) => {
      metrics.dropped(method, reason)
      refuse(res, refusal)
    }

    /** The origin-form target: an absolute-form target keeps its path and query only (SPEC §3.2). */
    const originForm = (target: string): string | undefined => {
      if (target.startsWith("/")) return target
      if (!/^https?:\/\//i.test(target) || !URL.canParse(target)) return undefined
      const url = new URL(target)
      return url.pathname + url.search
    }

    const answerConfig = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405, { allow: "GET", "content-type": "application/json" })
        res.end(
          JSON.stringify({ message: `httpproxy: ${req.method} not allowed on ${configPath}` }),
        )
        return
      }
      const table = members.table()
      const status = discovery.status()
      const body = JSON.stringify({
        endpoints: table.available.map((endpoint) => endpoint.url),
        mode: guard.mode,
        members: table.members
          .filter((member) => !member.isLearner)
          .map((member) => ({
            name: member.name,
            clientURLs: member.clientURLs.flatMap((url) => {
              const endpoint = table.all.find((e) => e.url === url.replace(/\/$/, ""))
              return endpoint === undefined ? [] : [{ url: endpoint.url, state: endpoint.state }]
            }),
          })),
        discovery:
          status._tag === "Complete"
            ? { state: "complete" }
            : { state: "pending", registered: status.registered, size: status.size },
      })
      res.writeHead(200, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
      })
      res.end(req.method === "HEAD" ? undefined : body)
    }

    const answerMetrics = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405, { allow: "GET" })
        res.end()
        return
      }
      metrics.exposition().then(
        (text) => {
          res.writeHead(200, { "content-type": metrics.contentType })
          res.end(req.method === "HEAD" ? undefined : text)
        },
        () => {
          res.writeHead(500)
          res.end()
        },
      )
    }

    const corsHeaders = (req: http.IncomingMessage): Record<string, string> | undefined => {
      const origin = req.headers.origin
      if (corsOrigins.size === 0 || origin === undefined) return undefined
      if (!corsOrigins.has("*") && !corsOrigins.has(origin)) return undefined
      return {
        "access-control-allow-origin": corsOrigins.has("*") ? "*" : origin,
        "access-control-allow-methods": "POST, GET, OPTIONS, PUT, DELETE",
        "access-control-allow-headers":
          req.headers["access-control-request-headers"] ?? "accept, content-type, authorization",
      }
    }

    /** Sends the request to the endpoints in order until one answers (SPEC §3.3, §3.4). */
    const forward = (
      req: http.IncomingMessage,
      res: http.ServerResponse,
      target: string,
      body: Buffer | null,
      started: number,
      watch: boolean,
    ): void => {
      const method = req.method!
      const available = members.table().available
      if (available.length === 0) {
        drop(res, method, "zero_endpoints", new ZeroEndpoints())
        return
      }
      const first = config.balance === "sticky" ? 0 : roundRobin++ % available.length
      const baseHeaders = endToEnd(req.rawHeaders, requestDrop)
      baseHeaders.push(
        "x-forwarded-for",
        appendForwardedFor(
          joined(req.headers["x-forwarded-for"]),
          clientAddress(req.socket.remoteAddress),
        ),
      )
      const priorVia = req.headers.via
      const retryAfterSend = method === "GET" || method === "HEAD"
      const extraHeaders = corsHeaders(req)
      let tried = 0
      let cancel: ((reason: Error) => void) | undefined
      let clientGone = false

      res.once("close", () => {
        if (!res.writableFinished) {
          clientGone = true
          cancel?.(new Error("client disconnected"))
        }
      })

      const attempt = (): void => {
        if (clientGone) return
        if (tried === available.length) {
          drop(res, method, "failed_getting_response", new EndpointsExhausted({ tried }))
          return
        }
        const endpoint = available[(first + tried) % available.length]!
        tried += 1
        const headers = baseHeaders.slice()
        const stamp = identity.stamp(endpoint, priorVia)
        headers.push("via", stamp.via)
        let sent = false
        let responded = false
        const own = watch ? takeWatchClient(endpoint) : undefined

        const handler: Dispatcher.DispatchHandler = {
          onConnect(abort) {
            sent = true
            cancel = abort
            if (clientGone) abort(new Error("client disconnected"))
          },
          onHeaders(statusCode, rawHeaders, resume, statusText) {
            if (statusCode < 200) return true
            responded = true
            metrics.handled(method, statusCode, (performance.now() - started) / 1_000)
            const headersOut = endToEnd(
              rawHeaders,
              corsOrigins.size > 0 ? corsResponseDrop : responseDrop,
            )
            if (extraHeaders !== undefined) {
              for (const [name, value] of Object.entries(extraHeaders)) headersOut.push(name, value)
            }
            res.writeHead(statusCode, statusText, headersOut)
            // A streamed answer (no Content-Length: long polls, watches) gets its headers now;
            // a sized one goes out with its body in one write.
            if (!hasContentLength(headersOut)) res.flushHeaders()
            res.on("drain", resume)
            return true
          },
          onData(chunk) {
            return res.write(chunk)
          },
          onComplete() {
            identity.release(stamp.nonce)
            res.end()
            if (own !== undefined) keepWatchClient(endpoint, own)
          },
          onError(error: Error & { code?: string }) {
            identity.release(stamp.nonce)
            void own?.destroy()
            if (clientGone) {
              metrics.dropped(method, "failed_sending_request")
              return
            }
            if (responded) {
              // Mid-body: the status is out; the client sees a cut stream, as from a member.
              res.destroy()
              return
            }
            if (isInvalidRequest(error)) {
              refuse(res, new BadRequest({ reason: error.message }))
              return
            }
            members.markFailed(endpoint, errorTag(error))
            if (!sent || retryAfterSend) {
              attempt()
              return
            }
            drop(
              res,
              method,
              "failed_getting_response",
              new SentNotRetried({ endpoint: endpoint.url, method }),
            )
          },
        }
        ;(own ?? poolFor(endpoint)).dispatch(
          { origin: endpoint.key, path: target, method, headers, body, idempotent: retryAfterSend },
          handler,
        )
      }
      attempt()
    }

    const handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      try {
        route(req, res)
      } catch (error) {
        Runtime.runFork(runtime)(
          Effect.logError("request handling failed").pipe(
            Effect.annotateLogs({ method: req.method, target: req.url, error: String(error) }),
          ),
        )
        if (!res.headersSent) {
          res.writeHead(500, { "content-type": "application/json" })
          res.end(JSON.stringify({ message: "httpproxy: internal error" }))
        } else res.destroy()
      }
    }

    const route = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      const method = req.method ?? "GET"
      const target = originForm(req.url ?? "")
      if (target === undefined) {
        refuse(res, new BadRequestTarget({ target: req.url ?? "" }))
        return
      }
      const client = clientAddress(req.socket.remoteAddress)
      const declaredLength = req.headers["content-length"]
      const admission = gate.admit(
        method,
        target,
        false,
        declaredLength === undefined ? undefined : Number(declaredLength),
        joined(req.headers.via),
        client,
      )
      switch (admission._tag) {
        case "Own":
          return admission.endpoint === "config" ? answerConfig(req, res) : answerMetrics(req, res)
        case "Preflight": {
          const headers = corsHeaders(req)
          res.writeHead(headers === undefined ? 403 : 200, headers ?? {})
          res.end()
          return
        }
        case "Refuse": {
          const refusal = admission.refusal
          if (admission.excludeEndpoint !== undefined) {
            const endpoint = members.table().get(admission.excludeEndpoint)
            if (endpoint !== undefined) members.excludeLoop(endpoint, endpoint.url)
          }
          if (refusal._tag === "WriteForbidden") metrics.refusedWrite("http")
          if (refusal._tag === "RequestTooLarge") metrics.dropped(method, "failed_sending_request")
          refuse(res, refusal, refusal._tag === "RequestTooLarge")
          return
        }
      }

      metrics.request(method)
      const started = performance.now()
      const watch = admission.watch
      const entry: InFlight = { res, watch }
      inFlight.add(entry)
      gate.enter(client)
      if (watch) metrics.watchOpened()
      res.once("close", () => {
        inFlight.delete(entry)
        gate.leave(client)
        if (watch) metrics.watchClosed()
      })

      const declared = Number(declaredLength ?? 0)
      const hasBody =
        declared > 0 ||
        (req.headers["transfer-encoding"] !== undefined && !bodylessMethods.has(method))
      if (!hasBody) {
        req.resume()
        forward(req, res, target, null, started, watch)
        return
      }
      const chunks: Array<Buffer> = []
      let size = 0
      req.on("data", (chunk: Buffer) => {
        size += chunk.length
        if (size > maxBody) {
          req.removeAllListeners("data")
          req.removeAllListeners("end")
          req.resume()
          metrics.dropped(method, "failed_sending_request")
          refuse(res, new RequestTooLarge({ limit: maxBody }), true)
          return
        }
        chunks.push(chunk)
      })
      req.on("end", () => forward(req, res, target, Buffer.concat(chunks, size), started, watch))
      req.on("error", () => res.destroy())
    }

    /** Graceful stop (SPEC §8.5): watches are closed, the rest may finish within `limits.drain`. */
    const drain = Effect.gen(function* () {
      for (const entry of inFlight) if (entry.watch) entry.res.destroy()
      yield* Effect.logInfo("draining requests").pipe(
        Effect.annotateLogs({ inFlight: inFlight.size }),
      )
      yield* awaitClosed(inFlight, (entry) => entry.res, limits.drain)
    })

    yield* Effect.addFinalizer(() =>
      Effect.forEach(
        [...pools.values(), ...[...idleWatchClients.values()].flat()],
        (dispatcher) => Effect.promise(() => dispatcher.destroy()),
        { discard: true },
      ),
    )

    return {
      /** The HTTP/1.1 request handler, for every listener. */
      handle,
      drain,
      inFlight: (): number => inFlight.size,
    } as const
  }),
}) {}
