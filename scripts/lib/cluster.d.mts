import type { ChildProcess } from "node:child_process"

export interface ClusterMember {
  readonly name: string
  readonly clientUrl: string
  readonly peerUrl: string
  readonly dataDir: string
  process: ChildProcess | undefined
  readonly logs: Array<string>
}

export interface Cluster {
  readonly root: string
  readonly members: ReadonlyArray<ClusterMember>
  readonly initialCluster: string
  clientUrls(): Array<string>
  stopMember(i: number): Promise<void>
  killMember(i: number): Promise<void>
  restartMember(i: number): Promise<void>
  pause(i: number): void
  resume(i: number): void
  stop(): Promise<void>
}

export function etcdBinary(): string
export function freePort(): Promise<number>
export function waitHealthy(clientUrl: string, timeoutMs?: number): Promise<void>
export function stopProcess(child: ChildProcess | undefined, graceMs?: number): Promise<void>
export function startCluster(options?: {
  size?: number
  memberArgs?: (i: number) => Array<string>
  quiet?: boolean
  dir?: string
}): Promise<Cluster>
