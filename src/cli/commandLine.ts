/**
 * etcd's command-line conventions, read once for every command: `-flag value`, `--flag value`,
 * `--flag=value`, `ETCD_*` variables (a flag and its variable both set is an error), etcd's YAML
 * config file, and etcd's member flags (ignored with one warning, or passed on to etcd by `join`).
 * It loads no @effect/cli: the proxy starts from here without it.
 */
import * as Either from "effect/Either"
import { UsageError } from "../domain/Errors.js"
import { envName, envNames, flagLabel, type Flag, type Setting } from "../domain/Flag.js"
import { configFileAliases, configFileSections, etcdFlag, etcdFlags } from "./etcdFlags.js"

export type Shell = "bash" | "zsh" | "fish" | "sh"

/** What @effect/cli answers by itself: help, version, shell completions. */
export type Builtin =
  | { readonly _tag: "Help" }
  | { readonly _tag: "Version" }
  | { readonly _tag: "Completions"; readonly shell: Shell }

export interface CommandSpec {
  /** The command's words after `etcd-proxy`: none for the proxy itself, `promote`, `join`. */
  readonly path: ReadonlyArray<string>
  readonly flags: ReadonlyArray<Flag>
  /**
   * What an etcd flag that is not in `flags` is here: a member setting, ignored with one
   * warning (the proxy); an argument for etcd (`join`); an unknown flag (`promote`).
   */
  readonly otherEtcdFlags: "ignore" | "pass" | "unknown"
  /** Flags this command reads that etcd must get as well (`join`). */
  readonly alsoForEtcd?: ReadonlySet<string>
  /** Warn about `ETCD_*` variables that name no etcd flag (the proxy; etcd warns too). */
  readonly warnUnknownEnv: boolean
}

export interface CommandLine {
  readonly spec: CommandSpec
  /** Every setting by flag name: from the command line, else from its variable. */
  readonly settings: ReadonlyMap<string, Setting>
  readonly builtin: Builtin | undefined
  /** Labels of the etcd member settings given (`--snapshot-count`, `ETCD_ENABLE_V2`). */
  readonly ignored: ReadonlyArray<string>
  /** Arguments for etcd (`join`), unchanged and in order. */
  readonly forEtcd: ReadonlyArray<string>
  readonly warnings: ReadonlyArray<string>
}

const usage = (message: string) => Either.left(new UsageError({ message }))

export const commandName = (spec: CommandSpec): string => ["etcd-proxy", ...spec.path].join(" ")

const shells: ReadonlyArray<Shell> = ["bash", "zsh", "fish", "sh"]

const byName = (flags: ReadonlyArray<Flag>): ReadonlyMap<string, Flag> => {
  const map = new Map<string, Flag>()
  for (const flag of flags) {
    map.set(flag.name, flag)
    for (const alias of flag.aliases ?? []) map.set(alias, flag)
  }
  return map
}

/**
 * Reads `argv` (after the command's words) and the environment. A repeated list flag adds to
 * its list; any other repeated flag keeps its last value, as Go's `flag` package does.
 */
export const readCommandLine = (
  spec: CommandSpec,
  argv: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>,
): Either.Either<CommandLine, UsageError> => {
  const command = commandName(spec)
  const flags = byName(spec.flags)
  const settings = new Map<string, Setting>()
  const ignored: Array<string> = []
  const ignoredNames = new Set<string>()
  const forEtcd: Array<string> = []
  let builtin: Builtin | undefined

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--" && spec.otherEtcdFlags === "pass") {
      forEtcd.push(...argv.slice(i + 1))
      break
    }
    if (!arg.startsWith("-") || arg === "-" || arg === "--") {
      if (spec.otherEtcdFlags === "pass") {
        forEtcd.push(arg)
        continue
      }
      return usage(
        `unexpected argument ${JSON.stringify(arg)}: ${command} takes flags only (see ${command} --help)`,
      )
    }
    const body = arg.startsWith("--") ? arg.slice(2) : arg.slice(1)
    const eq = body.indexOf("=")
    const name = eq === -1 ? body : body.slice(0, eq)
    const inline = eq === -1 ? undefined : body.slice(eq + 1)
    const label = flagLabel(name)
    /** The flag's value and the arguments it took, as Go's `flag` package reads them. */
    const take = (
      kind: Flag["kind"],
    ): Either.Either<{ value: string; tokens: Array<string> }, UsageError> => {
      if (inline !== undefined) return Either.right({ value: inline, tokens: [arg] })
      if (kind === "boolean") return Either.right({ value: "true", tokens: [arg] })
      if (i + 1 < argv.length) {
        const value = argv[++i]!
        return Either.right({ value, tokens: [arg, value] })
      }
      return Either.left(new UsageError({ message: `flag ${label} needs a value` }))
    }

    if (name === "help" || name === "h") {
      builtin ??= { _tag: "Help" }
      continue
    }
    if (name === "version") {
      builtin ??= { _tag: "Version" }
      continue
    }
    if (name === "completions") {
      const shell = take("value")
      if (Either.isLeft(shell)) return Either.left(shell.left)
      if (!(shells as ReadonlyArray<string>).includes(shell.right.value)) {
        return usage(
          `invalid value ${JSON.stringify(shell.right.value)} for --completions: expected bash, zsh or fish`,
        )
      }
      builtin = { _tag: "Completions", shell: shell.right.value as Shell }
      continue
    }

    const flag = flags.get(name)
    if (flag !== undefined) {
      const taken = take(flag.kind)
      if (Either.isLeft(taken)) return Either.left(taken.left)
      const before = settings.get(flag.name)
      settings.set(flag.name, {
        value:
          flag.kind === "list" && before !== undefined
            ? `${before.value},${taken.right.value}`
            : taken.right.value,
        label,
      })
      if (spec.alsoForEtcd?.has(flag.name) === true) forEtcd.push(...taken.right.tokens)
      continue
    }
    const etcd = etcdFlag(name)
    if (etcd !== undefined && spec.otherEtcdFlags !== "unknown") {
      const taken = take(etcd.kind)
      if (Either.isLeft(taken)) return Either.left(taken.left)
      if (spec.otherEtcdFlags === "pass") forEtcd.push(...taken.right.tokens)
      else if (!ignoredNames.has(etcd.name)) {
        ignoredNames.add(etcd.name)
        ignored.push(label)
      }
      continue
    }
    // join leaves what it does not know to etcd, which says what it thinks of it.
    if (spec.otherEtcdFlags === "pass") {
      forEtcd.push(arg)
      continue
    }
    return usage(`unknown flag ${label} (see ${command} --help)`)
  }

  const line = { spec, settings, builtin, ignored, forEtcd, warnings: [] as Array<string> }
  if (builtin !== undefined) return Either.right(line)

  // The environment, as etcd reads it: a variable set while its flag is given is an error
  // (etcd 3.4+ exits too), even when empty; an empty variable sets nothing.
  const fromArgv = new Set(settings.keys())
  const known = new Set<string>()
  for (const flag of spec.flags) {
    for (const variable of envNames(flag)) {
      known.add(variable)
      const value = env[variable]
      if (value === undefined) continue
      const given = settings.get(flag.name)
      if (fromArgv.has(flag.name)) {
        return usage(`${given!.label} and ${variable} are both set; set only one of them`)
      }
      if (value === "") continue
      if (given !== undefined) {
        return usage(
          `${given.label} and ${variable} both set ${flagLabel(flag.name)}; set only one of them`,
        )
      }
      settings.set(flag.name, { value, label: variable })
    }
  }
  for (const etcd of etcdFlags) {
    const variable = envName(etcd.name)
    if (known.has(variable)) continue
    known.add(variable)
    const value = env[variable]
    if (value === undefined || spec.otherEtcdFlags !== "ignore") continue
    if (ignoredNames.has(etcd.name)) {
      return usage(`${flagLabel(etcd.name)} and ${variable} are both set; set only one of them`)
    }
    if (value !== "") ignored.push(variable)
  }
  if (spec.warnUnknownEnv) {
    for (const variable of Object.keys(env).sort()) {
      if (variable.startsWith("ETCD_") && !known.has(variable)) {
        line.warnings.push(`unrecognized environment variable ${variable}, ignored`)
      }
    }
  }

  const missing = spec.flags.filter(
    (flag) => flag.required === true && (settings.get(flag.name)?.value.trim() ?? "") === "",
  )
  if (missing.length > 0) {
    const names = missing.map((flag) => {
      const variables = envNames(flag)
      return variables.length === 0
        ? flagLabel(flag.name)
        : `${flagLabel(flag.name)} (or ${variables.join(", ")})`
    })
    return usage(
      `${spec.path.join(" ") || command} needs ${names.length === 1 ? names[0] : `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`} (see ${command} --help)`,
    )
  }
  return Either.right(line)
}

/**
 * A parsed YAML config file replaces every other setting, as in etcd: top-level keys are flag
 * names, and etcd's `client-transport-security`/`peer-transport-security` sections are read too.
 */
export const applyConfigFile = (
  line: CommandLine,
  file: string,
  document: unknown,
): Either.Either<CommandLine, UsageError> => {
  const configLabel = line.settings.get("config-file")?.label ?? "--config-file"
  const doc = document ?? {}
  if (typeof doc !== "object" || Array.isArray(doc)) {
    return usage(`${configLabel} ${file} must be a YAML mapping of flag names to values`)
  }
  const flags = byName(line.spec.flags)
  const settings = new Map<string, Setting>()
  const ignored: Array<string> = []
  const unknown: Array<string> = []

  const put = (name: string, value: unknown, label: string): Either.Either<void, UsageError> => {
    if (value === null || value === undefined || value === "") return Either.void
    if (typeof value === "object" && !Array.isArray(value)) {
      return usage(`${label} must be a value or a list, not a mapping`)
    }
    const text = Array.isArray(value) ? value.map(String).join(",") : String(value)
    const flag = flags.get(name)
    if (flag !== undefined) settings.set(flag.name, { value: text, label })
    else if (etcdFlag(name) !== undefined) ignored.push(label)
    else unknown.push(label)
    return Either.void
  }

  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    const section = configFileSections[key]
    if (section !== undefined && typeof value === "object" && value !== null) {
      for (const [inner, innerValue] of Object.entries(value as Record<string, unknown>)) {
        const label = `${key}.${inner} in ${file}`
        const target = section[inner]
        if (target === undefined) unknown.push(label)
        else {
          const result = put(target, innerValue, label)
          if (Either.isLeft(result)) return Either.left(result.left)
        }
      }
      continue
    }
    const result = put(configFileAliases[key] ?? key, value, `${key} in ${file}`)
    if (Either.isLeft(result)) return Either.left(result.left)
  }

  const overridden = [
    ...[...line.settings.values()].map((s) => s.label).filter((l) => l !== configLabel),
    ...line.ignored,
  ]
  const warnings = [...line.warnings]
  if (overridden.length > 0) {
    warnings.push(`${configLabel} is set: ignoring ${overridden.join(", ")}, as etcd does`)
  }
  for (const label of unknown)
    warnings.push(`${label} is not an etcd or etcd-proxy setting, ignored`)
  return Either.right({ ...line, settings, ignored, warnings })
}

/** The one warning that names every member setting given, which a proxy has no use for. */
export const ignoredWarning = (line: CommandLine): string | undefined =>
  line.ignored.length === 0
    ? undefined
    : `ignoring etcd member settings that mean nothing to a proxy: ${line.ignored.join(", ")}`
