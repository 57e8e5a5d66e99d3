/** What a process holds, read from /proc: open fds and established TCP connections. */
import { readdirSync, readFileSync } from "node:fs"

export const openFds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length

/** The rows of the kernel's TCP tables (IPv4 and IPv6), each split into its fields. */
export const tcpRows = (): Array<ReadonlyArray<string>> => {
  const rows: Array<ReadonlyArray<string>> = []
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = ""
    try {
      text = readFileSync(table, "utf8")
    } catch {
      continue
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (fields.length >= 10) rows.push(fields)
    }
  }
  return rows
}

/** A port as the TCP tables write it ("127.0.0.1:2379" is "0100007F:094B"). */
export const portOf = (address: string): number => parseInt(address.split(":")[1]!, 16)

/** Established TCP connections (IPv4 and IPv6) whose remote port is `port`. */
export const establishedTo = (port: number): number =>
  tcpRows().filter((fields) => portOf(fields[2]!) === port && fields[3] === "01").length

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
