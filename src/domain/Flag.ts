/** A command-line flag as one table row: name, variable, default, help text and parser together. */
import * as Either from "effect/Either"
import type { UsageError } from "./Errors.js"

/**
 * One value as the user gave it, with the words that name where it came from: `--name` for a
 * flag, `ETCD_NAME` for a variable, `name in /etc/etcd-proxy.yaml` for a config file key. Every
 * message about the value uses `label`, so an error points at what the user actually wrote.
 */
export interface Setting {
  readonly value: string
  readonly label: string
}

export type Settings = ReadonlyMap<string, Setting>

export interface Flag<A = unknown> {
  readonly name: string
  /** Other spellings of the same setting (`--proxy-fallback` for `--discovery-fallback`). */
  readonly aliases?: ReadonlyArray<string>
  /** `boolean` flags take no value on the command line (`--x` is `--x=true`). */
  readonly kind: "value" | "list" | "boolean"
  /** Shown after the flag in help: `URL[,URL]`, `MS`, `FILE`. */
  readonly placeholder?: string
  /** Every value the flag takes, for help and shell completion. */
  readonly choices?: ReadonlyArray<string>
  /** The raw value the parser gets when the flag is not set; none means "unset". */
  readonly default?: string
  /** What help says about the default when there is no raw one (`<name>.etcd`, `none`). */
  readonly defaultText?: string
  /** False for flags etcd has no `ETCD_*` variable for (only `promote`'s and `join`'s own). */
  readonly env?: false
  readonly required?: true
  /** `etcd`: etcd 3.4/3.5 has this flag; `ours`: etcd-proxy's own. */
  readonly origin: "etcd" | "ours"
  readonly description: string
  readonly parse: (label: string, value: string) => Either.Either<A, UsageError>
}

/** etcd's rule (`pkg/flags`): `some-flag` is read from `ETCD_SOME_FLAG`. */
export const envName = (flag: string): string => `ETCD_${flag.toUpperCase().replace(/-/g, "_")}`

/** The variables a flag is read from: its own and its aliases'. */
export const envNames = (flag: Flag): ReadonlyArray<string> =>
  flag.env === false ? [] : [flag.name, ...(flag.aliases ?? [])].map(envName)

export const flagLabel = (name: string): string => `--${name}`

/** A flag's default as help shows it. */
export const defaultText = (flag: Flag): string =>
  flag.defaultText ?? (flag.default === undefined || flag.default === "" ? "none" : flag.default)

/** The flag's value from `settings`, or its default, parsed; `undefined` when neither exists. */
export const readFlag = <A>(
  settings: Settings,
  flag: Flag<A>,
): Either.Either<A | undefined, UsageError> => {
  const setting = settings.get(flag.name)
  const value = setting === undefined || setting.value.trim() === "" ? undefined : setting
  if (value !== undefined) return flag.parse(value.label, value.value)
  if (flag.default !== undefined) return flag.parse(flagLabel(flag.name), flag.default)
  return Either.right(undefined)
}

/** Like `readFlag`, for a flag with a default: always a value. */
export const readDefaulted = <A>(
  settings: Settings,
  flag: Flag<A> & { readonly default: string },
): Either.Either<A, UsageError> => {
  const setting = settings.get(flag.name)
  return setting === undefined || setting.value.trim() === ""
    ? flag.parse(flagLabel(flag.name), flag.default)
    : flag.parse(setting.label, setting.value)
}

/** The raw string of a setting, trimmed; `undefined` when unset or empty. */
export const rawValue = (settings: Settings, flag: Flag): string | undefined => {
  const value = settings.get(flag.name)?.value.trim()
  return value === undefined || value === "" ? undefined : value
}

/** The label of a setting if the user gave it, else the flag's own name. */
export const labelOf = (settings: Settings, flag: Flag): string =>
  settings.get(flag.name)?.label ?? flagLabel(flag.name)
