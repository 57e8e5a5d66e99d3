import type { ChildProcess } from "node:child_process"

export interface ClusterMember {
  readonly name: string
  readonly clientUrl: string
  readonly peerUrl: string
  readonly dataDir: string
  process: ChildProcess | undefined
  readonly logs: Array<string>
}

/** TLS files for members; the pair must be valid for server and client use on 127.0.0.1. */
export interface ClusterTls {
  readonly certFile: string
  readonly keyFile: string
  readonly caFile: string
  /** Members require client certificates signed by `caFile` (`--client-cert-auth`). */
  readonly clientCertAuth?: boolean
  /** Peer URLs use https too, with peer client certificates required. */
  readonly peer?: boolean
}

export interface Cluster {
  readonly root: string
  readonly members: ReadonlyArray<ClusterMember>
  readonly initialCluster: string
  readonly tls: ClusterTls | undefined
  clientUrls(): Array<string>
  stopMember(i: number): Promise<void>
  killMember(i: number): Promise<void>
  restartMember(i: number): Promise<void>
  pause(i: number): void
  resume(i: number): void
  stop(): Promise<void>
}

export function etcdBinary(): string
export function memberFlags(member: {
  name: string
  dataDir: string
  clientUrl: string
  peerUrl: string
  logLevel?: string
}): Array<string>
export function freePort(): Promise<number>
export function waitHealthy(
  clientUrl: string,
  timeoutMs?: number,
  tls?: Pick<ClusterTls, "certFile" | "keyFile" | "caFile">,
): Promise<void>
export function stopProcess(child: ChildProcess | undefined, graceMs?: number): Promise<void>
export function startCluster(options?: {
  size?: number
  memberArgs?: (i: number, member: ClusterMember) => Array<string>
  quiet?: boolean
  dir?: string
  tls?: ClusterTls
}): Promise<Cluster>
