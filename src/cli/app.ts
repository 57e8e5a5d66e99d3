/**
 * The command tree on @effect/cli: `etcd-proxy`, `promote` and `join`, their `--help`,
 * `--version` and `--completions bash|zsh|fish`, all generated from the flag tables.
 */
import * as Args from "@effect/cli/Args"
import * as CliConfig from "@effect/cli/CliConfig"
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Span from "@effect/cli/HelpDoc/Span"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { parseBool, parseChoice } from "../domain/Config.js"
import { UsageError } from "../domain/Errors.js"
import { defaultText, envNames, flagLabel, type Flag, type Setting } from "../domain/Flag.js"
import { PlatformLive } from "../layers/Platform.js"
import type { CommandLine, Shell } from "./commandLine.js"
import {
  joinCommand,
  joinDescription,
  promoteCommand,
  promoteDescription,
  proxyCommand,
  proxyDescription,
} from "./commands.js"
import { version } from "./version.js"

/*
 * What @effect/cli 0.77 cannot do, and how this file works around it (nowhere else does):
 *
 * 1. etcd's flag syntax (`-flag value`), `ETCD_*` variables with etcd's conflict rule, etcd's
 *    config file, member flags to ignore or pass on to etcd: @effect/cli knows none of these.
 *    commandLine.ts reads them first and hands @effect/cli a canonical argument list
 *    (`--flag=value`, `join`'s etcd arguments after `--`); labels of where each value came
 *    from travel beside it, so that messages name `ETCD_X` when the value came from there.
 * 2. `--log-level` is an @effect/cli built-in (Effect's levels; it strips the flag and re-runs
 *    the command), so etcd's `--log-level` never reaches @effect/cli's parser: the value read
 *    by commandLine.ts is used as it is (`reserved`).
 * 3. @effect/cli prints its errors as multi-line ANSI documents on stderr, and its help with
 *    ANSI escapes even into pipes, with a type sentence ("A user-defined piece of text.") under
 *    every option, a subcommand's usage without the program's name, and the command list
 *    padded to one wide column. The console it runs with drops its error printing (`runApp`
 *    turns the error into one `etcd-proxy: ...` line), removes those sentences, adds the name,
 *    breaks the padding, and removes ANSI escapes when stdout is not a terminal. Command
 *    handlers run with the real console.
 * 4. `--wizard` and the built-in `--log-level` cannot be switched off: they are hidden from help
 *    (`showBuiltIns: false`; help's footer names `--help`, `--version` and `--completions`),
 *    refused as unknown flags by commandLine.ts, and removed from the completion scripts.
 * 5. The bash completion script never completes a subcommand's flags when the program's name
 *    has a dash (its `etcd__proxy,promote` cases never match `etcd-proxy,promote`) and offers
 *    choices as one comma-joined word: `fixCompletions` repairs both.
 */

const reserved = new Set(["log-level"])

const describe = (flag: Flag): string => {
  const variables = envNames(flag)
  const facts = [
    flag.required === true ? "required" : `default: ${defaultText(flag)}`,
    variables.length === 0 ? undefined : `env: ${variables.join(", ")}`,
  ].filter((fact) => fact !== undefined)
  return `${flag.description} (${facts.join("; ")})`
}

type AnyOptions = Options.Options<unknown>

const optionOf = (flag: Flag): AnyOptions => {
  const withNames = <A>(options: Options.Options<A>) =>
    (flag.aliases ?? []).reduce((o, alias) => Options.withAlias(o, alias), options)
  if (flag.kind === "boolean") {
    return Options.boolean(flag.name).pipe(withNames, Options.withDescription(describe(flag)))
  }
  const base =
    flag.choices !== undefined
      ? Options.choice(flag.name, flag.choices)
      : Options.text(flag.name).pipe(Options.withPseudoName(flag.placeholder ?? "VALUE"))
  const named = withNames(base).pipe(Options.withDescription(describe(flag)))
  return flag.required === true ? named : Options.optional(named)
}

const optionsOf = (flags: ReadonlyArray<Flag>) =>
  Options.all(
    Object.fromEntries(flags.map((flag) => [flag.name, optionOf(flag)])),
  ) as Options.Options<Readonly<Record<string, unknown>>>

/** @effect/cli's parsed values back into settings, each with the label it was read under. */
const settingsOf = (
  flags: ReadonlyArray<Flag>,
  values: Readonly<Record<string, unknown>>,
  line: CommandLine,
): Map<string, Setting> => {
  const settings = new Map<string, Setting>()
  for (const flag of flags) {
    const value = values[flag.name]
    const text =
      typeof value === "boolean"
        ? value
          ? "true"
          : undefined
        : Option.isOption(value)
          ? Option.getOrUndefined(value as Option.Option<string>)
          : (value as string | undefined)
    if (text === undefined) continue
    settings.set(flag.name, {
      value: text,
      label: line.settings.get(flag.name)?.label ?? flagLabel(flag.name),
    })
  }
  for (const name of reserved) {
    const setting = line.settings.get(name)
    if (setting !== undefined) settings.set(name, setting)
  }
  return settings
}

/** The command line as @effect/cli reads it: `--flag=value`, and etcd's arguments after `--`. */
const canonicalArgs = (line: CommandLine): Either.Either<Array<string>, UsageError> =>
  Either.gen(function* () {
    const args = [...line.spec.path]
    const builtin = line.builtin
    if (builtin !== undefined) {
      args.push(
        builtin._tag === "Help"
          ? "--help"
          : builtin._tag === "Version"
            ? "--version"
            : `--completions=${builtin.shell}`,
      )
      return args
    }
    for (const flag of line.spec.flags) {
      const setting = line.settings.get(flag.name)
      if (reserved.has(flag.name) || setting === undefined || setting.value.trim() === "") continue
      if (flag.kind === "boolean") {
        if (yield* parseBool(setting.label, setting.value)) args.push(flagLabel(flag.name))
      } else {
        // @effect/cli's own message for a bad choice names neither the flag nor the value.
        if (flag.choices !== undefined)
          yield* parseChoice(flag.choices)(setting.label, setting.value)
        args.push(`${flagLabel(flag.name)}=${setting.value}`)
      }
    }
    if (line.spec.otherEtcdFlags === "pass") args.push("--", ...line.forEtcd)
    return args
  })

const makeApp = (
  line: CommandLine,
  env: Readonly<Record<string, string | undefined>>,
  console: Console.Console,
) => {
  // A command's code is loaded when it runs: help, version and completions need none of it.
  const withConsole = <A, E, R>(load: () => Promise<Effect.Effect<A, E, R>>) =>
    Effect.withConsole(Effect.flatten(Effect.promise(load)), console)
  const proxy = Command.make(
    "etcd-proxy",
    { options: optionsOf(proxyCommand.flags) },
    ({ options }) =>
      withConsole(async () =>
        (await import("./proxyCommand.js")).runProxy({
          ...line,
          settings: settingsOf(proxyCommand.flags, options, line),
        }),
      ),
  ).pipe(Command.withDescription(proxyDescription))
  const promote = Command.make(
    "promote",
    { options: optionsOf(promoteCommand.flags) },
    ({ options }) =>
      withConsole(async () =>
        (await import("./promote.js")).runPromote(settingsOf(promoteCommand.flags, options, line)),
      ),
  ).pipe(Command.withDescription(promoteDescription))
  const join = Command.make(
    "join",
    {
      options: optionsOf(joinCommand.flags),
      etcd: Args.text({ name: "etcd flags" }).pipe(
        Args.repeated,
        Args.withDescription("every other argument, passed to etcd unchanged"),
      ),
    },
    ({ options, etcd }) =>
      withConsole(async () =>
        (await import("./join.js")).runJoin(
          settingsOf(joinCommand.flags, options, line),
          etcd,
          env,
        ),
      ),
  ).pipe(Command.withDescription(joinDescription))
  return proxy.pipe(Command.withSubcommands([promote, join]))
}

const ansi = /\x1b\[[0-9;]*m/g

/** @effect/cli's sentences that say nothing about an option (see 3. above). */
const boilerplate = new Set([
  "A user-defined piece of text.",
  "A true or false value.",
  "This setting is optional.",
])

const tidyHelp = (text: string, terminal: boolean): string =>
  text
    .split("\n")
    .filter((line) => !boilerplate.has(line.replace(ansi, "").trim()))
    .map((line) => (terminal ? line : line.replace(ansi, "")))
    .map((line) =>
      line
        .replace(/^\$ (promote|join) /, "$$ etcd-proxy $1 ")
        .replace(/^( {2}- .*?) {3,}/, "$1\n      "),
    )
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")

/** See 4. and 5. above. */
export const fixCompletions = (shell: Shell, script: string): string => {
  const lines = script.split("\n")
  switch (shell) {
    case "bash":
    case "sh":
      return lines
        .map((line) =>
          line
            .replace(/^(\s*)etcd__proxy,/, "$1etcd-proxy,")
            .replace(
              /compgen -W "([^"$]*)"/g,
              (_, words: string) => `compgen -W "${words.replace(/,/g, " ")}"`,
            )
            .replace(/^(\s*opts=")([^"]*)"/, (_, start: string, words: string) => {
              const kept = words
                .split(" ")
                .filter(
                  (word, i, all) =>
                    word !== "--wizard" &&
                    !(word === "--log-level" && all[i - 1] === "--completions"),
                )
              return `${start}${kept.join(" ")}"`
            }),
        )
        .join("\n")
    case "zsh":
      return lines
        .filter(
          (line) =>
            !line.includes("'--wizard[") &&
            !line.includes("'--log-level[Sets the minimum log level for a command.]"),
        )
        .join("\n")
    case "fish":
      return lines
        .filter(
          (line) =>
            !line.includes(" -l wizard ") &&
            !(line.includes(" -l log-level ") && line.includes("Sets the minimum log level")),
        )
        .join("\n")
  }
}

/** One line from an @effect/cli error: its document as plain text. */
const validationMessage = (error: ValidationError.ValidationError): string => {
  const text = HelpDoc.toAnsiText(error.error).replace(ansi, "").replace(/\s+/g, " ").trim()
  return text === "" ? "invalid command line (see etcd-proxy --help)" : text
}

/** Runs a command line that the pre-pass has read (a subcommand, or a built-in) on @effect/cli. */
export const runApp = (line: CommandLine, env: Readonly<Record<string, string | undefined>>) =>
  Effect.gen(function* () {
    const args = yield* canonicalArgs(line)
    const terminal = process.stdout.isTTY === true
    const builtin = line.builtin
    const tidy = (text: string) =>
      builtin?._tag === "Completions"
        ? fixCompletions(builtin.shell, text)
        : tidyHelp(text, terminal)
    const real = yield* Effect.console
    const quiet: Console.Console = {
      ...real,
      log: (...parts: ReadonlyArray<unknown>) =>
        real.log(...parts.map((part) => (typeof part === "string" ? tidy(part) : part))),
      error: () => Effect.void,
    }
    const app = Command.run(makeApp(line, env, real), {
      name: "etcd-proxy",
      version,
      executable: "etcd-proxy",
      summary: Span.text("a transparent proxy for etcd clusters"),
      footer: HelpDoc.p(
        "--help prints this text (also after a command: etcd-proxy promote --help), --version the version, --completions bash|zsh|fish a completion script for all commands. The README lists every etcd flag and what it does here.",
      ),
    })
    return yield* app(["node", "etcd-proxy", ...args]).pipe(
      Effect.provide(CliConfig.layer({ showBuiltIns: false, isCaseSensitive: true })),
      Effect.withConsole(quiet),
      Effect.mapError((error) =>
        ValidationError.isValidationError(error)
          ? new UsageError({ message: validationMessage(error) })
          : error,
      ),
    )
  }).pipe(Effect.provide(Layer.merge(PlatformLive, NodeTerminal.layer)))
