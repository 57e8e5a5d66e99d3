// Starts and stops real etcd members on free loopback ports: used by the tests, the demo and
// the benchmark, so that all three run the same cluster the same way.
import { spawn, spawnSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
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

/** A free TCP port on 127.0.0.1 (the kernel picks it; we close it again at once). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Resolves once `GET url/health` says healthy, or rejects after `timeoutMs`. */
export async function waitHealthy(clientUrl, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs
  let last = "no answer"
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1_000) })
      const body = await response.text()
      if (response.ok && body.includes('"true"')) return
      last = `${response.status} ${body}`
    } catch (error) {
      last = String(error?.cause?.code ?? error)
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

/**
 * Starts `size` etcd members (v2 API enabled) on 127.0.0.1 and waits until all are healthy.
 * Returns the members and `stop()`, which ends every process and removes the data dirs.
 * `memberArgs(i)` may add or override flags of member i (e.g. `--advertise-client-urls`).
 */
export async function startCluster({ size = 3, memberArgs = () => [], quiet = true, dir } = {}) {
  const bin = etcdBinary()
  const root = dir ?? mkdtempSync(join(tmpdir(), "etcd-proxy-cluster-"))
  const members = []
  for (let i = 0; i < size; i++) {
    const clientPort = await freePort()
    const peerPort = await freePort()
    members.push({
      name: `m${i + 1}`,
      clientUrl: `http://127.0.0.1:${clientPort}`,
      peerUrl: `http://127.0.0.1:${peerPort}`,
      dataDir: join(root, `m${i + 1}`),
      process: undefined,
      logs: [],
    })
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(",")
  const token = `etcd-proxy-test-${process.pid}-${Date.now()}`

  const argsOf = (member, i) => {
    const base = [
      "--name",
      member.name,
      "--data-dir",
      member.dataDir,
      "--listen-client-urls",
      member.clientUrl,
      "--advertise-client-urls",
      member.clientUrl,
      "--listen-peer-urls",
      member.peerUrl,
      "--initial-advertise-peer-urls",
      member.peerUrl,
      "--initial-cluster",
      initialCluster,
      "--initial-cluster-state",
      "new",
      "--initial-cluster-token",
      token,
      "--enable-v2=true",
      "--heartbeat-interval",
      "50",
      "--election-timeout",
      "500",
      "--logger",
      "zap",
      "--log-level",
      quiet ? "error" : "info",
    ]
    return [...base, ...memberArgs(i)]
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
      await waitHealthy(member.clientUrl)
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
            waitHealthy(m.clientUrl).then(resolve, reject)
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
