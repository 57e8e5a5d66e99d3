/** A real DNS server (dnsmasq) on loopback serving SRV records, for `--discovery-srv` tests. */
import { spawn } from "node:child_process"
import { accessSync, constants, mkdtempSync, rmSync } from "node:fs"
import { Resolver } from "node:dns/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import { freePort, stopProcess } from "../../scripts/lib/cluster.mjs"

export interface SrvRecordSpec {
  /** The full record name, e.g. `_etcd-server._tcp.example.test`. */
  readonly name: string
  readonly target: string
  readonly port: number
}

export interface DnsServer {
  readonly host: string
  readonly port: number
  /** `HOST:PORT`, as `--discovery-srv-dns` takes it. */
  readonly address: string
  readonly output: () => string
}

/** dnsmasq, or a loud error that says how to install it. */
export const dnsmasqBinary = (): string => {
  const bin = process.env["DNSMASQ_BIN"] ?? "/usr/sbin/dnsmasq"
  try {
    accessSync(bin, constants.X_OK)
  } catch {
    throw new Error(
      `dnsmasq not found (${bin}): install it with "apt-get install -y dnsmasq-base", or set DNSMASQ_BIN`,
    )
  }
  return bin
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * dnsmasq answering only for the given SRV records: no upstream servers, no /etc/hosts, bound to
 * 127.0.0.1 on a free port, in the foreground; stopped and cleaned up with the scope.
 */
export const startDns = (records: ReadonlyArray<SrvRecordSpec>) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const bin = dnsmasqBinary()
      const dir = mkdtempSync(join(tmpdir(), "etcd-proxy-dns-"))
      const port = await freePort()
      const child = spawn(
        bin,
        [
          "--keep-in-foreground",
          "--conf-file=/dev/null",
          `--port=${port}`,
          "--listen-address=127.0.0.1",
          "--bind-interfaces",
          "--no-resolv",
          "--no-hosts",
          `--pid-file=${join(dir, "dnsmasq.pid")}`,
          "--log-facility=-",
          ...records.map((r) => `--srv-host=${r.name},${r.target},${r.port}`),
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      )
      let output = ""
      child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()))
      child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()))
      const server: DnsServer = {
        host: "127.0.0.1",
        port,
        address: `127.0.0.1:${port}`,
        output: () => output,
      }
      const probe = new Resolver({ timeout: 500, tries: 1 })
      probe.setServers([server.address])
      const deadline = Date.now() + 10_000
      while (Date.now() < deadline && child.exitCode === null) {
        try {
          if (records.length === 0) await probe.resolveSrv("_probe._tcp.invalid")
          else await probe.resolveSrv(records[0]!.name)
          return { server, child, dir }
        } catch (error) {
          // No records asked for: any DNS answer (a refusal) shows that it serves.
          if (records.length === 0 && (error as { code?: string }).code === "EREFUSED") {
            return { server, child, dir }
          }
          await sleep(50)
        }
      }
      await stopProcess(child)
      rmSync(dir, { recursive: true, force: true })
      throw new Error(`dnsmasq did not answer on ${server.address}:\n${output}`)
    }),
    ({ child, dir }) =>
      Effect.promise(async () => {
        await stopProcess(child)
        rmSync(dir, { recursive: true, force: true })
      }),
  ).pipe(Effect.map(({ server }) => server))
