// nginx as a reference target: what an operator would put in front of etcd instead of a proxy
// that knows the cluster. One worker, upstream keep-alive, forwarding to the one member every
// other target loads; its own prefix, config, pid and log files in a temp dir; 127.0.0.1 only.
import { spawn, spawnSync } from "node:child_process"
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { delimiter, join } from "node:path"
import { freePort, stopProcess } from "../../scripts/lib/cluster.mjs"
import { childPids } from "./proc.mjs"

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** The nginx binary: $NGINX_BIN, or `nginx` on PATH or in /usr/sbin (Debian's place for it). */
export function nginxBinary() {
  if (process.env.NGINX_BIN !== undefined) return process.env.NGINX_BIN
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/sbin"]
  return dirs
    .filter((d) => d !== "")
    .map((d) => join(d, "nginx"))
    .find((p) => existsSync(p))
}

/** "nginx/1.22.1", or undefined when there is none. */
export function nginxVersion(bin = nginxBinary()) {
  if (bin === undefined) return undefined
  const probe = spawnSync(bin, ["-v"], { encoding: "utf8" })
  return /nginx\/\S+/.exec(`${probe.stderr}${probe.stdout}`)?.[0]
}

/**
 * The whole configuration. `member` is the member's client URL; `connections` sizes the
 * upstream keep-alive pool (wrk's connection count); `maxConnections` is the worker's
 * connection limit (client and upstream sockets both count: the memory scenario needs two per
 * held watch).
 */
export function nginxConfig({ dir, port, member, connections, maxConnections }) {
  const upstream = new URL(member)
  return `# etcd-proxy bench: nginx in front of one etcd member, as an operator would set it up.
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile ${maxConnections + 64};
pid ${join(dir, "nginx.pid")};
error_log ${join(dir, "error.log")} warn;
events {
  worker_connections ${maxConnections};
}
http {
  access_log off;
  client_body_temp_path ${join(dir, "client_body")};
  proxy_temp_path ${join(dir, "proxy")};
  fastcgi_temp_path ${join(dir, "fastcgi")};
  uwsgi_temp_path ${join(dir, "uwsgi")};
  scgi_temp_path ${join(dir, "scgi")};
  # Keep-alive connections are never closed after N requests, as with the other targets.
  keepalive_requests 1000000;
  upstream etcd {
    server ${upstream.hostname}:${upstream.port};
    keepalive ${connections};
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://etcd;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      # etcd's watches (?wait=true, &stream=true) share their paths with reads: answers go out
      # as they come (a buffered stream delivers nothing), and a long poll waits as long as the
      # member holds it.
      proxy_buffering off;
      proxy_read_timeout 1h;
    }
  }
}
`
}

/** Is `pid` an nginx worker (so that a reused PID is never signalled)? */
const isNginxWorker = (pid) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").startsWith("nginx: worker")
  } catch {
    return false
  }
}

/**
 * Starts nginx (master and one worker) in front of `member` and waits until a request through it
 * reaches the member: `{ name, url, pid, workerPids(), child, tail, stop }`. CPU and RSS are its
 * worker's (`workerPids()`); the master only supervises.
 */
export async function startNginx(procs, { member, connections, maxConnections }) {
  const bin = nginxBinary()
  if (bin === undefined) throw new Error("nginx not found (Debian package nginx-light)")
  const dir = procs.dir(mkdtempSync(join(tmpdir(), "etcd-proxy-bench-nginx-")))
  // The worker drops root for `nobody` and must still reach its temp dirs inside.
  chmodSync(dir, 0o755)
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const conf = join(dir, "nginx.conf")
  writeFileSync(conf, nginxConfig({ dir, port, member, connections, maxConnections }))
  const child = procs.track(
    spawn(bin, ["-p", `${dir}/`, "-c", conf, "-e", join(dir, "error.log")], {
      stdio: ["ignore", "pipe", "pipe"],
    }),
  )
  let output = ""
  const keep = (chunk) => (output = `${output}${chunk}`.slice(-3000))
  child.stdout.on("data", keep)
  child.stderr.on("data", keep)
  const tail = () => {
    let log = ""
    try {
      log = readFileSync(join(dir, "error.log"), "utf8").slice(-3000)
    } catch {
      // not written yet
    }
    return `${output}${log}`.trim()
  }
  // A master killed hard leaves its worker running: whatever happens, the workers seen go too.
  const workers = new Set()
  const killWorkers = () => {
    for (const w of workers) {
      if (!isNginxWorker(w)) continue
      try {
        process.kill(w, "SIGKILL")
      } catch {
        // already gone
      }
    }
  }
  procs.onClose(killWorkers)
  const workerPids = () => {
    const now = childPids(child.pid).filter(isNginxWorker)
    for (const w of now) workers.add(w)
    return now
  }

  const deadline = Date.now() + 15_000
  let last = "no answer"
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`nginx exited (${child.exitCode ?? child.signalCode}): ${tail()}`)
    }
    if (Date.now() > deadline) throw new Error(`nginx at ${url} not ready: ${last}; ${tail()}`)
    try {
      const response = await fetch(`${url}/version`, { signal: AbortSignal.timeout(1_000) })
      await response.text()
      if (response.ok && workerPids().length > 0) break
      last = `HTTP ${response.status}`
    } catch (error) {
      last = String(error?.cause?.code ?? error)
    }
    await sleep(100)
  }
  return {
    name: "nginx",
    url,
    pid: child.pid,
    workerPids,
    child,
    tail,
    stop: async () => {
      workerPids()
      // SIGTERM is nginx's fast shutdown: held long polls are cut, not waited for.
      await stopProcess(child, 3_000)
      killWorkers()
    },
  }
}
