// Starts a real 3-member etcd cluster on loopback and the built etcd-proxy in front of it,
// prints what to try, and stops everything on Ctrl-C (or when the proxy exits).
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { freePort, startCluster, stopProcess } from "./lib/cluster.mjs"

const root = join(import.meta.dirname, "..")
const requested = Number(process.env.PORT ?? 23790)
const port = (await portFree(requested)) ? requested : await freePort()

function portFree(p) {
  return import("node:net").then(
    ({ createServer }) =>
      new Promise((resolve) => {
        const server = createServer()
        server.once("error", () => resolve(false))
        server.listen(p, "127.0.0.1", () => server.close(() => resolve(true)))
      }),
  )
}

console.log("starting a 3-member etcd cluster on 127.0.0.1 ...")
const cluster = await startCluster({ size: 3 })
const dataDir = mkdtempSync(join(tmpdir(), "etcd-proxy-demo-"))
const url = `http://127.0.0.1:${port}`
const proxy = spawn(
  process.execPath,
  [
    join(root, "dist", "cli", "bin.js"),
    "--listen-client-urls",
    url,
    "--initial-cluster",
    cluster.initialCluster,
    "--data-dir",
    dataDir,
    "--proxy-refresh-interval",
    "5000",
    ...process.argv.slice(2),
  ],
  { stdio: ["ignore", "inherit", "inherit"] },
)

let stopping = false
async function stopAll(code) {
  if (stopping) return
  stopping = true
  console.log("\nstopping the proxy and the cluster ...")
  await stopProcess(proxy)
  await cluster.stop()
  rmSync(dataDir, { recursive: true, force: true })
  process.exit(code)
}
process.on("SIGINT", () => stopAll(0))
process.on("SIGTERM", () => stopAll(0))
proxy.once("exit", (code) => {
  if (!stopping) {
    console.error(`etcd-proxy exited (${code})`)
    void stopAll(1)
  }
})

for (let i = 0; i < 100; i++) {
  try {
    await fetch(`${url}/v2/config/local/proxy`)
    break
  } catch {
    await new Promise((r) => setTimeout(r, 100))
  }
}

console.log(`
etcd members (client URLs): ${cluster.clientUrls().join(" ")}
etcd-proxy:                 ${url}

Try:
  curl -s -X PUT ${url}/v2/keys/hello -d value=world
  curl -s ${url}/v2/keys/hello
  ETCDCTL_API=3 etcdctl --endpoints ${url} put greeting hi
  curl -s ${url}/v3/kv/range -X POST -d '{"key":"Z3JlZXRpbmc="}'      # "greeting", base64
  curl -s ${url}/v2/config/local/proxy
  curl -s ${url}/metrics | grep etcd_proxy
  curl -N "${url}/v2/keys/hello?wait=true"     # then change the key from another shell

Ctrl-C stops the proxy and the cluster.
`)
