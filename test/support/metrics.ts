/** Reads one sample out of a Prometheus text exposition. */
export const sample = (
  text: string,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number | undefined => {
  const wanted = Object.entries(labels)
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (match === null || match[1] !== name) continue
    const have = new Map<string, string>()
    for (const pair of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      have.set(pair[1]!, pair[2]!)
    }
    if (have.size !== wanted.length) continue
    if (wanted.every(([k, v]) => have.get(k) === v)) return Number(match[3])
  }
  return undefined
}
