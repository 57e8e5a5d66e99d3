/**
 * What ships for operators (SPEC §8.2, §8.5): the Prometheus rules pass `promtool check rules`
 * and their unit tests, every metric the rules and the Grafana dashboard name exists in a real
 * proxy's scrape, the systemd unit reloads with SIGHUP, and `npm pack` ships what it should.
 */
import { execFile } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { EtcdCluster } from "../support/cluster.js"
import { startProxy } from "../support/proxy.js"

const root = join(import.meta.dirname, "..", "..")
const rulesDir = join(root, "contrib", "prometheus")

const run = (command: string, args: ReadonlyArray<string>, cwd: string) =>
  Effect.async<{ code: number; output: string }>((resume) => {
    const child = execFile(
      command,
      args,
      { cwd, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) =>
        resume(
          Effect.succeed({
            code: error === null ? 0 : typeof error.code === "number" ? error.code : -1,
            output: stdout + stderr,
          }),
        ),
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/** Metric names in PromQL text: our families and the process ones, as a query names them. */
const metricNames = (text: string): ReadonlySet<string> =>
  new Set(text.match(/\b(?:etcd_proxy|process|nodejs)_[a-z0-9_]+\b/g) ?? [])

/** Every sample name a scrape can be queried by: the families and a histogram's series. */
const exposed = (scrape: string): ReadonlySet<string> => {
  const names = new Set<string>()
  for (const [, name, type] of scrape.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name!)
    if (type === "histogram") for (const s of ["_bucket", "_sum", "_count"]) names.add(name! + s)
  }
  return names
}

const dashboardQueries = (): ReadonlyArray<string> => {
  const dashboard = JSON.parse(
    readFileSync(join(root, "contrib", "grafana", "etcd-proxy.json"), "utf8"),
  ) as {
    panels: ReadonlyArray<{ targets?: ReadonlyArray<{ expr: string }> }>
    templating: { list: ReadonlyArray<{ definition?: string }> }
  }
  return [
    ...dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((t) => t.expr)),
    ...dashboard.templating.list.flatMap((v) => (v.definition === undefined ? [] : [v.definition])),
  ]
}

layer(EtcdCluster.layer({ size: 1 }), { excludeTestServices: true, timeout: "120 seconds" })(
  "contrib",
  (it) => {
    it.scoped("promtool checks the alert rules and passes their unit tests", () =>
      Effect.gen(function* () {
        const check = yield* run("promtool", ["check", "rules", "etcd-proxy.rules.yml"], rulesDir)
        expect(check.code, check.output).toBe(0)
        expect(check.output).toContain("SUCCESS: 6 rules found")
        const test = yield* run(
          "promtool",
          ["test", "rules", "etcd-proxy.rules.test.yml"],
          rulesDir,
        )
        expect(test.code, test.output).toBe(0)
        expect(test.output).toContain("SUCCESS")
      }),
    )

    it.scoped("every metric the dashboard and the rules name is in a real proxy's scrape", () =>
      Effect.gen(function* () {
        const cluster = yield* EtcdCluster
        const proxy = yield* startProxy({ args: ["--initial-cluster", cluster.initialCluster] })
        yield* Effect.promise(() => fetch(`${proxy.url}/v2/keys/contrib`).then((r) => r.text()))
        const scrape = yield* Effect.promise(() =>
          fetch(`${proxy.url}/metrics`).then((r) => r.text()),
        )
        const available = exposed(scrape)
        const queries = dashboardQueries()
        expect(queries.length).toBeGreaterThan(10)
        const rules = readFileSync(join(rulesDir, "etcd-proxy.rules.yml"), "utf8")
        const used = new Set([...metricNames(queries.join("\n")), ...metricNames(rules)])
        // The rules and the dashboard between them watch every family of ours.
        for (const family of [...available].filter((n) => /^etcd_proxy_[a-z_]+$/.test(n))) {
          const series = [family, ...["_bucket", "_sum", "_count"].map((s) => family + s)]
          expect(
            series.some((name) => used.has(name)),
            `${family} is neither charted nor alerted on`,
          ).toBe(true)
        }
        expect(used.size).toBeGreaterThan(10)
        const missing = [...used].filter((name) => !available.has(name))
        expect(missing, `not in the scrape:\n${scrape.slice(0, 2_000)}`).toEqual([])
      }),
    )

    it.scoped("the systemd unit reloads with SIGHUP", () =>
      Effect.sync(() => {
        const unit = readFileSync(join(root, "contrib", "etcd-proxy.service"), "utf8")
        expect(unit).toMatch(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m)
      }),
    )

    it.scoped("npm pack ships the built code, contrib, README and LICENSE, nothing else", () =>
      Effect.gen(function* () {
        const pack = yield* run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], root)
        expect(pack.code, pack.output).toBe(0)
        const [manifest] = JSON.parse(pack.output.slice(pack.output.indexOf("["))) as Array<{
          files: ReadonlyArray<{ path: string }>
        }>
        const files = manifest!.files.map((f) => f.path)
        for (const needed of [
          "package.json",
          "README.md",
          "LICENSE",
          "dist/cli/bin.js",
          "dist/index.js",
          "dist/index.d.ts",
          "dist/services/TlsMaterial.js",
          "contrib/etcd-proxy.service",
          "contrib/etcd-proxy.env",
          "contrib/prometheus/etcd-proxy.rules.yml",
          "contrib/grafana/etcd-proxy.json",
        ]) {
          expect(files).toContain(needed)
        }
        const unexpected = files.filter(
          (path) =>
            !/^dist\/.+(\.js|\.d\.ts)$/.test(path) &&
            !path.startsWith("contrib/") &&
            !["package.json", "README.md", "LICENSE"].includes(path),
        )
        expect(unexpected).toEqual([])
        expect(files.filter((path) => path.endsWith(".map"))).toEqual([])
        const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
          license: string
        }
        expect(pkg.license).toBe("Apache-2.0")
        expect(readFileSync(join(root, "LICENSE"), "utf8")).toContain(
          "Apache License\n                           Version 2.0, January 2004",
        )
      }),
    )
  },
)
