// Starts and stops real etcd members on free loopback ports: used by the tests, the demo and
// the benchmark, so that all three run the same cluster the same way.
import { spawn, spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { get as httpsGet } from "node:https"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

/** The etcd binary, or a loud error that says how to install it. */
export function etcdBinary() {
  const bin = process.env.ETCD_BIN ?? "etcd"
  const probe = spawnSync(bin, ["--version"], { encoding: "utf8" })
  if (probe.error !== undefined || probe.status !== 0) {
    throw new Error(
      `etcd not found (${bin}): install it with "apt-get install -y etcd-server etcd-client" ` +
        `(Debian package etcd-server, 3.4), or set ETCD_BIN to an etcd 3.4 binary`,
    )
  }
  return bin
}

/**
 * The flags every test member gets: its name, data dir and URLs, the v2 API, and short raft
 * timings so that elections after a member is killed take well under a second.
 */
export function memberFlags({ name, dataDir, clientUrl, peerUrl, logLevel = "error" }) {
  return [
    "--name",
    name,
    "--data-dir",
    dataDir,
    "--listen-client-urls",
    clientUrl,
    "--advertise-client-urls",
    clientUrl,
    "--listen-peer-urls",
    peerUrl,
    "--initial-advertise-peer-urls",
    peerUrl,
    "--enable-v2=true",
    "--heartbeat-interval",
    "50",
    "--election-timeout",
    "500",
    "--logger",
    "zap",
    "--log-level",
    logLevel,
  ]
}

/** A free TCP port on 127.0.0.1 (the kernel picks it; we close it again at once). */
/**
 * A free loopback port for a server the tests start, from below the kernel's range of ports for
 * outgoing connections (32768–60999 on Linux): a port picked from that range can be taken by
 * some client's connection between the pick and the server's bind ("address already in use").
 */
export function freePort() {
  const tryPort = (attempt) =>
    new Promise((resolve, reject) => {
      const port = 20_000 + Math.floor(Math.random() * 12_000)
      const server = createServer()
      server.unref()
      server.once("error", (error) =>
        attempt < 50 ? resolve(tryPort(attempt + 1)) : reject(error),
      )
      server.listen(port, "127.0.0.1", () => server.close(() => resolve(port)))
    })
  return tryPort(0)
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** `GET url` over https with the given CA and client pair: `{ status, body }`. */
function httpsText(url, tls) {
  return new Promise((resolve, reject) => {
    const request = httpsGet(
      url,
      {
        ca: readFileSync(tls.caFile),
        cert: readFileSync(tls.certFile),
        key: readFileSync(tls.keyFile),
        timeout: 1_000,
      },
      (response) => {
        let body = ""
        response.on("data", (chunk) => (body += chunk))
        response.on("end", () =>
          resolve({ ok: response.statusCode === 200, status: response.statusCode, body }),
        )
        response.on("error", reject)
      },
    )
    request.on("timeout", () => request.destroy(new Error("timeout")))
    request.on("error", reject)
  })
}

/**
 * Resolves once `GET url/health` says healthy, or rejects after `timeoutMs`. An https member is
 * asked with `tls` (`{ certFile, keyFile, caFile }`).
 */
export async function waitHealthy(clientUrl, timeoutMs = 20_000, tls = undefined) {
  const deadline = Date.now() + timeoutMs
  let last = "no answer"
  while (Date.now() < deadline) {
    try {
      const response =
        tls !== undefined && clientUrl.startsWith("https:")
          ? await httpsText(`${clientUrl}/health`, tls)
          : await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1_000) }).then(
              async (r) => ({ ok: r.ok, status: r.status, body: await r.text() }),
            )
      if (response.ok && response.body.includes('"true"')) return
      last = `${response.status} ${response.body}`
    } catch (error) {
      last = String(error?.cause?.code ?? error?.code ?? error)
    }
    await sleep(100)
  }
  throw new Error(`etcd at ${clientUrl} not healthy after ${timeoutMs} ms: ${last}`)
}

function exited(child) {
  return child.exitCode !== null || child.signalCode !== null
}

/** Sends SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
export function stopProcess(child, graceMs = 5_000) {
  if (child === undefined || exited(child)) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs)
    child.once("exit", () => {
      clearTimeout(timer)
      resolve()
    })
    child.kill("SIGCONT")
    child.kill("SIGTERM")
  })
}

/** etcd's TLS flags for the members' client URLs and, with `tls.peer`, their peer URLs. */
function tlsArgs(tls) {
  if (tls === undefined) return []
  const client = [
    "--cert-file",
    tls.certFile,
    "--key-file",
    tls.keyFile,
    "--trusted-ca-file",
    tls.caFile,
  ]
  if (tls.clientCertAuth === true) client.push("--client-cert-auth")
  const peer =
    tls.peer === true
      ? [
          "--peer-cert-file",
          tls.certFile,
          "--peer-key-file",
          tls.keyFile,
          "--peer-trusted-ca-file",
          tls.caFile,
          "--peer-client-cert-auth",
        ]
      : []
  return [...client, ...peer]
}

/**
 * Starts `size` etcd members (v2 API enabled) on 127.0.0.1 and waits until all are healthy.
 * Returns the members and `stop()`, which ends every process and removes the data dirs.
 * `memberArgs(i, member)` may add or override flags of member i (e.g. `--advertise-client-urls`);
 * `member` has its `clientUrl` and `peerUrl`.
 * `tls` (`{ certFile, keyFile, caFile, clientCertAuth?, peer? }`, the pair valid for server and
 * client use on 127.0.0.1) serves the client URLs over https, and the peer URLs too with `peer`.
 */
export async function startCluster({
  size = 3,
  memberArgs = () => [],
  quiet = true,
  dir,
  tls,
} = {}) {
  const bin = etcdBinary()
  const root = dir ?? mkdtempSync(join(tmpdir(), "etcd-proxy-cluster-"))
  const clientScheme = tls === undefined ? "http" : "https"
  const peerScheme = tls?.peer === true ? "https" : "http"
  const members = []
  for (let i = 0; i < size; i++) {
    const clientPort = await freePort()
    const peerPort = await freePort()
    members.push({
      name: `m${i + 1}`,
      clientUrl: `${clientScheme}://127.0.0.1:${clientPort}`,
      peerUrl: `${peerScheme}://127.0.0.1:${peerPort}`,
      dataDir: join(root, `m${i + 1}`),
      process: undefined,
      logs: [],
    })
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(",")
  const token = `etcd-proxy-test-${process.pid}-${Date.now()}`

  const argsOf = (member, i) => {
    const base = [
      ...memberFlags({ ...member, logLevel: quiet ? "error" : "info" }),
      "--initial-cluster",
      initialCluster,
      "--initial-cluster-state",
      "new",
      "--initial-cluster-token",
      token,
      ...tlsArgs(tls),
    ]
    return [...base, ...memberArgs(i, member)]
  }

  const launch = (member, i) => {
    const child = spawn(bin, argsOf(member, i), { stdio: ["ignore", "pipe", "pipe"] })
    const keep = (chunk) => {
      member.logs.push(chunk.toString())
      if (member.logs.length > 200) member.logs.shift()
    }
    child.stdout.on("data", keep)
    child.stderr.on("data", keep)
    member.process = child
    return child
  }

  const cluster = {
    root,
    members,
    initialCluster,
    tls,
    /** `--initial-cluster` value with the members' peer URLs. */
    clientUrls: () => members.map((m) => m.clientUrl),
    /** Stops member i (SIGTERM, then SIGKILL). */
    stopMember: (i) => stopProcess(members[i].process),
    /** Kills member i at once. */
    killMember: async (i) => {
      const child = members[i].process
      if (child === undefined || exited(child)) return
      const gone = new Promise((resolve) => child.once("exit", resolve))
      child.kill("SIGKILL")
      await gone
    },
    /** Starts member i again on its data dir (it rejoins the cluster). */
    restartMember: async (i) => {
      const member = members[i]
      const args = argsOf(member, i).map((a) => (a === "new" ? "existing" : a))
      const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] })
      child.stdout.on("data", (c) => member.logs.push(c.toString()))
      child.stderr.on("data", (c) => member.logs.push(c.toString()))
      member.process = child
      await waitHealthy(member.clientUrl, undefined, tls)
    },
    pause: (i) => members[i].process?.kill("SIGSTOP"),
    resume: (i) => members[i].process?.kill("SIGCONT"),
    stop: async () => {
      await Promise.all(members.map((m) => stopProcess(m.process)))
      if (dir === undefined) rmSync(root, { recursive: true, force: true })
    },
  }

  try {
    members.forEach(launch)
    await Promise.all(
      members.map(
        (m) =>
          new Promise((resolve, reject) => {
            m.process.once("exit", (code) =>
              reject(
                new Error(`etcd ${m.name} exited with ${code}: ${m.logs.join("").slice(-2000)}`),
              ),
            )
            waitHealthy(m.clientUrl, undefined, tls).then(resolve, reject)
          }),
      ),
    )
    for (const m of members) m.process.removeAllListeners("exit")
  } catch (error) {
    await cluster.stop()
    throw error
  }
  return cluster
}
