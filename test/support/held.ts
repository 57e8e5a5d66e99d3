/** What one process holds, read from /proc: resident memory, open fds and its TCP connections by port. */
import { readdirSync, readFileSync, readlinkSync } from "node:fs"
import { portOf, tcpRows } from "./procfs.js"

/** Resident set size in MiB (VmRSS). */
export const rssMiB = (pid: number): number => {
  const status = readFileSync(`/proc/${pid}/status`, "utf8")
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024
}

interface TcpSocket {
  readonly localPort: number
  readonly remotePort: number
  /** The kernel's state code: "01" established, "08" close-wait, "0A" listening ... */
  readonly state: string
}

const socketInodes = (pid: number): Set<string> => {
  const inodes = new Set<string>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (match !== null) inodes.add(match[1]!)
    } catch {
      // The fd closed while we looked.
    }
  }
  return inodes
}

/** The TCP sockets (IPv4 and IPv6) that `pid` has open. */
export const tcpSocketsOf = (pid: number): Array<TcpSocket> => {
  const mine = socketInodes(pid)
  return tcpRows()
    .filter((fields) => mine.has(fields[9]!))
    .map((fields) => ({
      localPort: portOf(fields[1]!),
      remotePort: portOf(fields[2]!),
      state: fields[3]!,
    }))
}

export interface Held {
  readonly rssMiB: number
  readonly fds: number
  /** Established connections to any of the member ports. */
  readonly memberConnections: number
  /** Connections accepted on the listening port, in any state (CLOSE_WAIT included). */
  readonly clientConnections: number
}

/** What `pid` holds now; `listenPort` is its client port, `memberPorts` the members' client ports. */
export const held = (pid: number, listenPort: number, memberPorts: ReadonlyArray<number>): Held => {
  const sockets = tcpSocketsOf(pid)
  return {
    rssMiB: Math.round(rssMiB(pid) * 10) / 10,
    fds: readdirSync(`/proc/${pid}/fd`).length,
    memberConnections: sockets.filter((s) => s.state === "01" && memberPorts.includes(s.remotePort))
      .length,
    clientConnections: sockets.filter((s) => s.state !== "0A" && s.localPort === listenPort).length,
  }
}
