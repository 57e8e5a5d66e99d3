/** etcd's YAML config file as a document; loaded only when a config file is named. */
import * as Either from "effect/Either"
import { parse } from "yaml"
import { UsageError } from "../domain/Errors.js"

export const parseConfigFile = (
  label: string,
  file: string,
  text: string,
): Either.Either<unknown, UsageError> =>
  Either.try({
    try: () => parse(text) as unknown,
    catch: (error) =>
      new UsageError({
        message: `${label} ${file} is not valid YAML: ${String((error as Error).message)
          .split("\n")[0]!
          // The parser's first line ends with a colon that introduces a source excerpt.
          .replace(/:\s*$/, "")}`,
      }),
  })
