/** The built `etcd-proxy` command's own surface (SPEC §2, §9): help, version, completions, errors. */
import { spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { freePort } from "../../scripts/lib/cluster.mjs"
import { acquireCluster } from "../support/cluster.js"
import { runCli, spawnCli, tempDir } from "../support/proxy.js"

const version = (
  JSON.parse(readFileSync(join(import.meta.dirname, "..", "..", "package.json"), "utf8")) as {
    version: string
  }
).version

/** Bash completes `words` (the last one being typed) with the script `etcd-proxy` printed. */
const complete = (script: string, words: ReadonlyArray<string>): Array<string> => {
  const quoted = words.map((word) => `'${word}'`).join(" ")
  const run = spawnSync(
    "bash",
    [
      "-c",
      `${script}
COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; COMPREPLY=()
_etcd-proxy_bash_completions etcd-proxy
printf '%s\\n' "\${COMPREPLY[@]}"`,
    ],
    { encoding: "utf8" },
  )
  expect(run.status, run.stderr).toBe(0)
  return run.stdout.split("\n").filter((line) => line !== "")
}

/** Every error is one line, `etcd-proxy: ...`, and exit 2. */
const expectUsageError = (result: { code: number | string; output: string }, text: string) => {
  expect(result.code, result.output).toBe(2)
  expect(result.output).toBe(`etcd-proxy: ${text}\n`)
}

describe("help, version and completions", () => {
  it.effect(
    "--help describes every option in words, without ANSI escapes into a pipe",
    () =>
      Effect.gen(function* () {
        const outputs = new Map<string, string>()
        for (const [args, options] of [
          [["--help"], ["--proxy-refresh-interval", "--listen-metrics-urls", "--cipher-suites"]],
          [["-h"], ["--proxy-answer-timeout", "--log-outputs"]],
          [
            ["promote", "--help"],
            ["--endpoints", "--peer-urls", "--exec"],
          ],
          [["promote", "-help"], ["--endpoints"]],
          [
            ["join", "--help"],
            ["--discovery", "--etcd-bin"],
          ],
        ] as const) {
          const { code, output } = yield* runCli(args)
          outputs.set(args.join(" "), output)
          expect(code, args.join(" ")).toBe(0)
          expect(output).not.toContain("\x1b[")
          expect(output).not.toContain("A user-defined piece of text.")
          expect(output).not.toContain("--wizard")
          expect(output).not.toContain("Sets the minimum log level")
          for (const option of options) expect(output, option).toContain(option)
        }
        const help = outputs.get("--help")!
        expect(help).toContain(
          "time between member list refreshes (default: 30000; env: ETCD_PROXY_REFRESH_INTERVAL)",
        )
        expect(help).toContain("$ etcd-proxy [--proxy on|readonly]")
        expect(help).toContain("- promote --endpoints URL[,URL]")
        expect(help).toContain("--completions bash|zsh|fish")
        expect(help).toMatch(/etcd's default is unlimited, ours is bounded \(default: 256/)
        expect(outputs.get("promote --help")).toContain(
          "$ etcd-proxy promote --endpoints URL[,URL] --name NAME",
        )
      }),
    240_000,
  )

  it.effect("--version prints the package's version", () =>
    Effect.gen(function* () {
      for (const flag of ["--version", "-version"]) {
        const { code, output } = yield* runCli([flag])
        expect(code).toBe(0)
        expect(output.trim()).toBe(version)
      }
    }),
  )

  it.effect("--completions bash passes bash -n and completes the commands and their flags", () =>
    Effect.gen(function* () {
      const { code, output: script } = yield* runCli(["--completions", "bash"])
      expect(code).toBe(0)
      const syntax = spawnSync("bash", ["-n"], { input: script, encoding: "utf8" })
      expect(syntax.status, syntax.stderr).toBe(0)
      expect(complete(script, ["etcd-proxy", "pro"])).toEqual(["promote"])
      expect(complete(script, ["etcd-proxy", "j"])).toEqual(["join"])
      expect(complete(script, ["etcd-proxy", "--proxy-re"]).sort()).toEqual([
        "--proxy-read-timeout",
        "--proxy-refresh-interval",
      ])
      expect(complete(script, ["etcd-proxy", "--proxy-balance", ""])).toEqual([
        "sticky",
        "round-robin",
      ])
      expect(complete(script, ["etcd-proxy", "promote", "--e"]).sort()).toEqual([
        "--endpoints",
        "--etcd-bin",
        "--exec",
      ])
      expect(complete(script, ["etcd-proxy", "join", "--disc"]).sort()).toEqual([
        "--discovery",
        "--discovery-fallback",
        "--discovery-proxy",
      ])
      expect(complete(script, ["etcd-proxy", "--w"])).toEqual([])
      expect(complete(script, ["etcd-proxy", "--log-level", "w"])).toEqual(["warn"])
    }),
  )

  it.effect(
    "--completions zsh and fish name every command and no @effect/cli built-in",
    () =>
      Effect.gen(function* () {
        for (const shell of ["zsh", "fish"]) {
          const { code, output } = yield* runCli([`--completions=${shell}`])
          expect(code).toBe(0)
          for (const word of ["promote", "join", "proxy-refresh-interval", "endpoints"]) {
            expect(output, `${shell} ${word}`).toContain(word)
          }
          expect(output).not.toContain("wizard")
          expect(output).not.toContain("Sets the minimum log level")
        }
      }),
    120_000,
  )
})

describe("errors", () => {
  it.effect(
    "are one line, etcd-proxy: ..., with exit 2, for every command",
    () =>
      Effect.gen(function* () {
        expectUsageError(yield* runCli(["--bogus"]), "unknown flag --bogus (see etcd-proxy --help)")
        expectUsageError(
          yield* runCli(["--wizard"]),
          "unknown flag --wizard (see etcd-proxy --help)",
        )
        expectUsageError(
          yield* runCli(["promote", "-endpoints", "http://127.0.0.1:2379"]),
          "promote needs --name (or ETCD_NAME), --peer-urls and --data-dir (or ETCD_DATA_DIR) (see etcd-proxy promote --help)",
        )
        expectUsageError(
          yield* runCli(["promote"]),
          "promote needs --endpoints, --name (or ETCD_NAME), --peer-urls and --data-dir (or ETCD_DATA_DIR) (see etcd-proxy promote --help)",
        )
        expectUsageError(
          yield* runCli(["promote", "--snapshot-count", "5"]),
          "unknown flag --snapshot-count (see etcd-proxy promote --help)",
        )
        expectUsageError(
          yield* runCli(
            ["promote", "-endpoints", "localhost:2379", "-peer-urls", "http://127.0.0.1:2380"],
            { ETCD_NAME: "infra1", ETCD_DATA_DIR: "/nonexistent" },
          ),
          'invalid value "localhost:2379" for --endpoints: scheme must be http or https',
        )
        expectUsageError(
          yield* runCli(["join", "--name", "a"]),
          "join needs --discovery (or ETCD_DISCOVERY) (see etcd-proxy join --help)",
        )
        expectUsageError(
          yield* runCli(["join", "--discovery", "http://127.0.0.1:1/t"], { ETCD_DISCOVERY: "x" }),
          "--discovery and ETCD_DISCOVERY are both set; set only one of them",
        )
        // join checks its fallback proxy's flags before it asks the discovery service anything.
        expectUsageError(
          yield* runCli(["join", "--discovery", "http://127.0.0.1:1/t", "--proxy-fallback", "x"]),
          'invalid value "x" for --proxy-fallback: expected one of proxy, exit',
        )
        expectUsageError(
          yield* runCli(["join", "--discovery", "http://127.0.0.1:1/t"], {
            ETCD_PROXY_REFRESH_INTERVAL: "x",
          }),
          'invalid value "x" for ETCD_PROXY_REFRESH_INTERVAL: expected milliseconds, e.g. 5000 or 5s',
        )
        expectUsageError(
          yield* runCli([
            "join",
            "--discovery",
            "http://127.0.0.1:1/t",
            "-listen-client-urls",
            "127.0.0.1:2379",
          ]),
          'invalid value "127.0.0.1:2379" for --listen-client-urls: not a URL',
        )
        expectUsageError(
          yield* runCli(["--initial-cluster", "m1=http://127.0.0.1:2380"], {
            ETCD_PROXY_REFRESH_INTERVAL: "x",
          }),
          'invalid value "x" for ETCD_PROXY_REFRESH_INTERVAL: expected milliseconds, e.g. 5000 or 5s',
        )
        expectUsageError(
          yield* runCli(["-proxy-refresh-interval", "5000"], {
            ETCD_PROXY_REFRESH_INTERVAL: "1000",
          }),
          "--proxy-refresh-interval and ETCD_PROXY_REFRESH_INTERVAL are both set; set only one of them",
        )
        expectUsageError(
          yield* runCli([
            "--initial-cluster",
            "m1=http://127.0.0.1:2380",
            "--cipher-suites",
            "RC4",
          ]),
          'invalid value "RC4" for --cipher-suites: "RC4" is not a TLS cipher suite etcd knows (Go\'s names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)',
        )
        expectUsageError(
          yield* runCli(["--completions", "tcsh"]),
          'invalid value "tcsh" for --completions: expected bash, zsh or fish',
        )
      }),
    240_000,
  )

  it.effect("join logs in the shape --log-format asks for (zap's JSON), not Effect's", () =>
    Effect.promise(async () => {
      // The discovery service is unreachable: join logs its retries while it waits.
      const run = spawnCli(["join", "--discovery", "http://127.0.0.1:1/t", "--log-format", "json"])
      const deadline = Date.now() + 10_000
      while (!run.output().includes("\n") && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      run.child.kill("SIGKILL")
      await run.exited
      const first = JSON.parse(run.output().split("\n")[0]!) as Record<string, unknown>
      expect(first).toMatchObject({
        level: "warn",
        msg: "discovery service unreachable; retrying",
        error: "DiscoveryUnreachable",
      })
      expect(first["fiber"]).toBeUndefined()
    }),
  )
})

it.scopedLive(
  "promote takes etcd's single-dash flags and ETCD_* variables against a real cluster",
  () =>
    Effect.gen(function* () {
      const cluster = yield* acquireCluster({
        size: 1,
        memberArgs: () => ["--strict-reconfig-check=false"],
      })
      const dataDir = yield* tempDir("etcd-proxy-cli-promote-")
      const peer = `http://127.0.0.1:${yield* Effect.promise(() => freePort())}`
      const client = `http://127.0.0.1:${yield* Effect.promise(() => freePort())}`
      const result = yield* runCli(
        [
          "promote",
          "-endpoints",
          cluster.members[0]!.clientUrl,
          "-peer-urls",
          peer,
          "-data-dir",
          dataDir,
        ],
        { ETCD_NAME: "infra1", ETCD_LISTEN_CLIENT_URLS: client },
      )
      expect(result.code, result.output).toBe(0)
      expect(result.output).toContain("promote: 2/4 added the member")
      expect(result.output).toContain('ETCD_NAME="infra1"')
      const initial = /^ETCD_INITIAL_CLUSTER="(.*)"$/m.exec(result.output)?.[1]?.split(",")
      expect(initial?.sort()).toEqual(
        [`${cluster.members[0]!.name}=${cluster.members[0]!.peerUrl}`, `infra1=${peer}`].sort(),
      )
      expect(result.output).toContain(
        `etcd --listen-client-urls ${client} --advertise-client-urls ${client}`,
      )
    }),
  60_000,
)
