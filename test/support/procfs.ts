/** What a process holds, read from /proc: open fds and established TCP connections. */
import { readdirSync, readFileSync } from "node:fs"

export const openFds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length

/** Established TCP connections (IPv4 and IPv6) whose remote port is `port`. */
export const establishedTo = (port: number): number => {
  const hex = port.toString(16).toUpperCase().padStart(4, "0")
  let count = 0
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = ""
    try {
      text = readFileSync(table, "utf8")
    } catch {
      continue
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (fields.length < 4) continue
      const remotePort = fields[2]!.split(":")[1]
      if (remotePort === hex && fields[3] === "01") count += 1
    }
  }
  return count
}

/** The pids of a process's children (from the children files of its tasks in /proc). */
export const childPids = (pid: number): Array<number> => {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((task) =>
      readFileSync(`/proc/${pid}/task/${task}/children`, "utf8")
        .split(/\s+/)
        .filter((s) => s !== "")
        .map(Number),
    )
  } catch {
    return []
  }
}
