// Process bookkeeping for the benchmark: everything the bench starts is registered here and
// stopped by PID at the end, also on Ctrl-C and on errors; /proc readers for CPU, RSS and fds.
import { spawnSync } from "node:child_process"
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { stopProcess } from "../../scripts/lib/cluster.mjs"

const clockTicks = (() => {
  const probe = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" })
  const ticks = Number(probe.stdout?.trim())
  return Number.isFinite(ticks) && ticks > 0 ? ticks : 100
})()

/** `{ user, sys }` CPU seconds of a process (children not included), or undefined when it is gone. */
export function cpuTimes(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    // Fields after the command name, which may itself hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after "pid (comm) ".
    return { user: Number(fields[11]) / clockTicks, sys: Number(fields[12]) / clockTicks }
  } catch {
    return undefined
  }
}

/** user + system CPU seconds of a process, or undefined when it is gone. */
export function cpuSeconds(pid) {
  const t = cpuTimes(pid)
  return t === undefined ? undefined : t.user + t.sys
}

/**
 * Seconds a process's threads spent runnable but waiting for a CPU (the second field of
 * /proc/<pid>/task/<tid>/schedstat, summed over its threads): time the scheduler gave to others.
 */
export function runQueueWait(pid) {
  try {
    let ns = 0
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[1])
      } catch {
        // thread gone
      }
    }
    return ns / 1e9
  } catch {
    return undefined
  }
}

/** `{ rssMb, hwmMb }` from /proc/<pid>/status (VmRSS, VmHWM), or undefined when it is gone. */
export function memory(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8")
    const kb = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN)
    return { rssMb: kb("VmRSS") / 1024, hwmMb: kb("VmHWM") / 1024 }
  } catch {
    return undefined
  }
}

/** Open file descriptors of a process. */
export function fdCount(pid) {
  try {
    return readdirSync(`/proc/${pid}/fd`).length
  } catch {
    return undefined
  }
}

/** The soft and hard open-files limits of a process. */
export function nofile(pid) {
  try {
    const limits = readFileSync(`/proc/${pid}/limits`, "utf8")
    const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits)
    const value = (text) => (text === "unlimited" ? Infinity : Number(text))
    return match === null ? undefined : { soft: value(match[1]), hard: value(match[2]) }
  } catch {
    return undefined
  }
}

/**
 * Raises a process's open-files limit to at least `wanted` with `prlimit --pid` (root may raise
 * the hard limit; anyone may raise the soft one up to the hard one). Returns the limits after.
 */
export function raiseNofile(pid, wanted) {
  const before = nofile(pid)
  if (before === undefined || before.soft >= wanted) return before
  const tries = [`--nofile=${wanted}:${Math.max(wanted, before.hard)}`, `--nofile=${before.hard}:`]
  for (const arg of tries) {
    const result = spawnSync("prlimit", ["--pid", String(pid), arg], { encoding: "utf8" })
    if (result.status === 0 && (nofile(pid)?.soft ?? 0) >= Math.min(wanted, before.hard)) break
  }
  return nofile(pid)
}

/**
 * Resets a process's peak RSS (VmHWM) so that the next reading is the peak of what follows
 * (`echo 5 > /proc/<pid>/clear_refs`, Linux 4.0+, needs ptrace rights over it). False if not.
 */
export function resetPeak(pid) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5")
    return true
  } catch {
    return false
  }
}

/**
 * Watches a process (or several: a number or an array of PIDs, summed) during one measurement:
 * CPU seconds used, seconds its threads waited for a CPU, peak RSS (VmHWM after a reset, or the highest VmRSS sampled every `everyMs`
 * when the reset is not allowed) and peak fds.
 */
export function sampler(pidOrPids, { everyMs = 200, fds = false } = {}) {
  if (pidOrPids === undefined) return { stop: () => undefined }
  const pids = Array.isArray(pidOrPids) ? pidOrPids : [pidOrPids]
  const cpu = () => {
    const total = { user: 0, sys: 0 }
    for (const pid of pids) {
      const t = cpuTimes(pid)
      if (t === undefined) return undefined
      total.user += t.user
      total.sys += t.sys
    }
    return total
  }
  const rssNow = () => pids.reduce((a, pid) => a + (memory(pid)?.rssMb ?? 0), 0)
  const fdsNow = () => pids.reduce((a, pid) => a + (fdCount(pid) ?? 0), 0)
  const waited = () => pids.reduce((a, pid) => a + (runQueueWait(pid) ?? 0), 0)
  const cpu0 = cpu()
  const wait0 = waited()
  const peakReset = pids.every(resetPeak)
  let rssMax = rssNow()
  let fdMax = fds ? fdsNow() : undefined
  const timer = setInterval(() => {
    rssMax = Math.max(rssMax, rssNow())
    if (fds) fdMax = Math.max(fdMax, fdsNow())
  }, everyMs)
  return {
    stop() {
      clearInterval(timer)
      const cpu1 = cpu()
      const wait1 = waited()
      const rss = rssNow()
      const hwm = pids.reduce((a, pid) => a + (memory(pid)?.hwmMb ?? 0), 0)
      rssMax = Math.max(rssMax, rss)
      return {
        ...(cpu0 === undefined || cpu1 === undefined
          ? {}
          : {
              cpuS: cpu1.user + cpu1.sys - cpu0.user - cpu0.sys,
              userS: cpu1.user - cpu0.user,
              sysS: cpu1.sys - cpu0.sys,
            }),
        runQueueWaitS: wait1 - wait0,
        peakRssMb: peakReset ? Math.max(hwm, rssMax) : rssMax,
        rssMb: rss,
        ...(fds ? { peakFds: Math.max(fdMax, fdsNow()) } : {}),
      }
    },
  }
}

/** The PIDs of a process's children (Linux /proc/<pid>/task/<tid>/children). */
export function childPids(pid) {
  const pids = new Set()
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim()
      for (const child of text.split(/\s+/)) if (child !== "") pids.add(Number(child))
    }
  } catch {
    // gone, or no children file: none
  }
  return [...pids]
}

/** CPU seconds of several processes together (etcd's members). */
export function totalCpu(pids) {
  let sum = 0
  for (const pid of pids) sum += cpuSeconds(pid) ?? 0
  return sum
}

const alive = (pid) => {
  try {
    process.kill(pid, 0)
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0] !== "Z"
  } catch {
    return false
  }
}

/**
 * Last resort: any child process of the bench still running (one a start-up that was
 * interrupted never handed over) gets SIGTERM, then SIGKILL, by its PID.
 */
async function sweepChildren() {
  const left = childPids(process.pid).filter(alive)
  if (left.length === 0) return
  for (const pid of left) {
    try {
      process.kill(pid, "SIGTERM")
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + 3_000
  while (Date.now() < deadline && left.some(alive)) await new Promise((r) => setTimeout(r, 50))
  for (const pid of left.filter(alive)) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // already gone
    }
  }
}

/**
 * What the bench started: child processes (stopped together, SIGTERM then SIGKILL, by PID),
 * clean-up functions (the cluster) and temp dirs (removed).
 */
export function registry() {
  const children = []
  const cleanups = []
  const dirs = []
  let closing
  return {
    /** Keeps `child` to stop at the end; returns it. */
    track(child) {
      children.push(child)
      child.once("exit", () => {
        const at = children.indexOf(child)
        if (at !== -1) children.splice(at, 1)
      })
      return child
    },
    onClose(fn) {
      cleanups.push(fn)
    },
    dir(path) {
      dirs.push(path)
      return path
    },
    /** Stops everything once; later calls wait for the first. */
    close() {
      closing ??= (async () => {
        await Promise.all(children.map((child) => stopProcess(child, 3_000)))
        for (const fn of [...cleanups].reverse()) {
          try {
            await fn()
          } catch (error) {
            process.stderr.write(`clean-up failed: ${error}\n`)
          }
        }
        await sweepChildren()
        for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
      })()
      return closing
    },
  }
}
