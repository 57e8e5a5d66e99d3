// Experiment only (`npm run bench -- --two-workers`): runs the built CLI in N node:cluster workers
// that share one listen port (node:cluster hands accepted connections to the workers in turn;
// Node 20 has no SO_REUSEPORT option). The CLI itself is unchanged: each worker runs
// dist/cli/bin.js with its own data dir (the data-dir lock forbids sharing one) and an extra
// private listen URL, through which the primary checks the worker's sticky endpoint: a worker
// that would load a member other than BENCH_WANTED_ENDPOINT is started again, so the
// experiment loads the same member as the other targets. Prints BENCH-READY when all are up.
//   node bench/two-workers.mjs <CLI flags with --listen-client-urls URL --data-dir DIR>
import cluster from "node:cluster"
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import { freePort } from "../scripts/lib/cluster.mjs"

const cli = join(import.meta.dirname, "..", "dist", "cli", "bin.js")

if (cluster.isWorker) {
  process.argv = [process.argv[0], cli, ...JSON.parse(process.env.BENCH_WORKER_ARGS)]
  await import(cli)
} else {
  const workers = Number(process.env.BENCH_WORKERS ?? 2)
  const wanted = process.env.BENCH_WANTED_ENDPOINT
  const args = process.argv.slice(2)
  const valueOf = (flag) => args[args.indexOf(flag) + 1]
  const without = (list, flag) => {
    const at = list.indexOf(flag)
    return at === -1 ? list : [...list.slice(0, at), ...list.slice(at + 2)]
  }
  const shared = valueOf("--listen-client-urls")
  const dataDir = valueOf("--data-dir")
  const rest = without(without(args, "--listen-client-urls"), "--data-dir")
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
  let stopping = false

  const endpointsOf = async (url) => {
    for (let i = 0; i < 300; i++) {
      try {
        const response = await fetch(`${url}/v2/config/local/proxy`)
        const body = await response.json()
        if (body.endpoints?.length > 0) return body.endpoints
      } catch {
        // not yet listening
      }
      await sleep(100)
    }
    throw new Error(`worker at ${url} never became ready`)
  }

  const startWorker = async (i) => {
    for (let attempt = 1; ; attempt++) {
      const own = `http://127.0.0.1:${await freePort()}`
      const dir = join(dataDir, `w${i}-${attempt}`)
      mkdirSync(dir, { recursive: true })
      const worker = cluster.fork({
        BENCH_WORKER_ARGS: JSON.stringify([
          ...rest,
          "--listen-client-urls",
          `${shared},${own}`,
          "--data-dir",
          dir,
        ]),
      })
      const endpoints = await endpointsOf(own)
      if (wanted === undefined || endpoints[0] === wanted || attempt >= 10) return worker
      await new Promise((resolve) => {
        worker.once("exit", resolve)
        worker.kill("SIGTERM")
      })
    }
  }

  const stop = async () => {
    if (stopping) return
    stopping = true
    const alive = Object.values(cluster.workers ?? {})
    await Promise.all(
      alive.map(
        (worker) =>
          new Promise((resolve) => {
            const timer = setTimeout(() => worker.process.kill("SIGKILL"), 5_000)
            worker.once("exit", () => {
              clearTimeout(timer)
              resolve()
            })
            worker.process.kill("SIGTERM")
          }),
      ),
    )
    process.exit(0)
  }
  process.on("SIGTERM", stop)
  process.on("SIGINT", stop)

  for (let i = 0; i < workers; i++) await startWorker(i)
  cluster.on("exit", (worker, code) => {
    if (!stopping) {
      process.stderr.write(`worker ${worker.process.pid} exited (${code}); stopping\n`)
      void stop()
    }
  })
  process.stdout.write("BENCH-READY\n")
}
