/**
 * Every flag etcd 3.4 and 3.5 accept (from their `etcdmain/config.go`), and what each does here:
 * `proxy` flags are read from the proxy's flag table; `member` flags mean something only to an
 * etcd member and are accepted, named in one start-up warning, and otherwise ignored.
 */

export interface EtcdFlag {
  readonly name: string
  /** Boolean flags take no value after them on the command line (Go's `flag` package). */
  readonly kind: "value" | "boolean"
  /** The etcd releases that have the flag (`3.4.25+, 3.5`: from 3.4.25 on). */
  readonly versions: string
  readonly use: "proxy" | "member"
  /** What the flag does on a member, for `member` flags. */
  readonly member?: string
}

const proxy = (name: string, kind: EtcdFlag["kind"], versions: string): EtcdFlag => ({
  name,
  kind,
  versions,
  use: "proxy",
})

const member = (
  name: string,
  kind: EtcdFlag["kind"],
  versions: string,
  about: string,
): EtcdFlag => ({ name, kind, versions, use: "member", member: about })

/** etcd 0.4's flags, which etcd 3.4 and 3.5 still accept and ignore (without a value). */
const legacy = (name: string): EtcdFlag =>
  member(name, "boolean", "3.4, 3.5", "an etcd 0.4 flag etcd itself ignores")

export const etcdFlags: ReadonlyArray<EtcdFlag> = [
  proxy("config-file", "value", "3.4, 3.5"),
  proxy("data-dir", "value", "3.4, 3.5"),
  member("wal-dir", "value", "3.4, 3.5", "the member's write-ahead log directory"),
  member("listen-peer-urls", "value", "3.4, 3.5", "where the member listens for raft traffic"),
  proxy("listen-client-urls", "value", "3.4, 3.5"),
  proxy("listen-metrics-urls", "value", "3.4, 3.5"),
  member("max-snapshots", "value", "3.4, 3.5", "how many snapshot files the member keeps"),
  member("max-wals", "value", "3.4, 3.5", "how many WAL files the member keeps"),
  proxy("name", "value", "3.4, 3.5"),
  member("snapshot-count", "value", "3.4, 3.5", "raft entries between the member's snapshots"),
  member("heartbeat-interval", "value", "3.4, 3.5", "raft heartbeat period"),
  member("election-timeout", "value", "3.4, 3.5", "raft election timeout"),
  member(
    "initial-election-tick-advance",
    "boolean",
    "3.4, 3.5",
    "raft's first election after start",
  ),
  member("quota-backend-bytes", "value", "3.4, 3.5", "size limit of the member's database"),
  member(
    "backend-batch-interval",
    "value",
    "3.4, 3.5",
    "how often the member commits its database",
  ),
  member("backend-batch-limit", "value", "3.4, 3.5", "operations per database commit"),
  member("max-txn-ops", "value", "3.4, 3.5", "operations per transaction the member accepts"),
  proxy("max-request-bytes", "value", "3.4, 3.5"),
  member("grpc-keepalive-min-time", "value", "3.4, 3.5", "the member's gRPC keep-alive policy"),
  member("grpc-keepalive-interval", "value", "3.4, 3.5", "the member's gRPC keep-alive pings"),
  member("grpc-keepalive-timeout", "value", "3.4, 3.5", "the member's gRPC keep-alive timeout"),
  member(
    "initial-advertise-peer-urls",
    "value",
    "3.4, 3.5",
    "peer URLs the member announces at bootstrap",
  ),
  member(
    "advertise-client-urls",
    "value",
    "3.4, 3.5",
    "client URLs the member announces to the cluster",
  ),
  proxy("discovery", "value", "3.4, 3.5"),
  proxy("discovery-fallback", "value", "3.4, 3.5"),
  proxy("discovery-proxy", "value", "3.4, 3.5"),
  proxy("discovery-srv", "value", "3.4, 3.5"),
  proxy("discovery-srv-name", "value", "3.4, 3.5"),
  proxy("initial-cluster", "value", "3.4, 3.5"),
  member("initial-cluster-token", "value", "3.4, 3.5", "token of a new cluster at bootstrap"),
  member("initial-cluster-state", "value", "3.4, 3.5", "new or existing cluster, at bootstrap"),
  member(
    "strict-reconfig-check",
    "boolean",
    "3.4, 3.5",
    "member refuses membership changes that risk quorum",
  ),
  member("enable-v2", "boolean", "3.4, 3.5", "the member serves the v2 API"),
  member("pre-vote", "boolean", "3.4, 3.5", "raft's pre-vote phase"),
  proxy("proxy", "value", "3.4, 3.5"),
  proxy("proxy-failure-wait", "value", "3.4, 3.5"),
  proxy("proxy-refresh-interval", "value", "3.4, 3.5"),
  proxy("proxy-dial-timeout", "value", "3.4, 3.5"),
  proxy("proxy-write-timeout", "value", "3.4, 3.5"),
  proxy("proxy-read-timeout", "value", "3.4, 3.5"),
  proxy("cert-file", "value", "3.4, 3.5"),
  proxy("key-file", "value", "3.4, 3.5"),
  proxy("client-cert-auth", "boolean", "3.4, 3.5"),
  proxy("client-crl-file", "value", "3.4, 3.5"),
  member(
    "client-cert-allowed-hostname",
    "value",
    "3.4, 3.5",
    "client certificate host names the member accepts (not checked here: use a CA that signs only your clients)",
  ),
  proxy("trusted-ca-file", "value", "3.4, 3.5"),
  proxy("auto-tls", "boolean", "3.4, 3.5"),
  proxy("peer-cert-file", "value", "3.4, 3.5"),
  proxy("peer-key-file", "value", "3.4, 3.5"),
  member(
    "peer-client-cert-auth",
    "boolean",
    "3.4, 3.5",
    "the member requires certificates from peers",
  ),
  proxy("peer-trusted-ca-file", "value", "3.4, 3.5"),
  proxy("peer-auto-tls", "boolean", "3.4, 3.5"),
  member("peer-crl-file", "value", "3.4, 3.5", "revoked peer certificates"),
  member("peer-cert-allowed-cn", "value", "3.4, 3.5", "peer certificate names the member accepts"),
  member(
    "peer-cert-allowed-hostname",
    "value",
    "3.4, 3.5",
    "peer certificate host names the member accepts",
  ),
  proxy("cipher-suites", "value", "3.4, 3.5"),
  member(
    "experimental-peer-skip-client-san-verification",
    "boolean",
    "3.4, 3.5",
    "the member's check of peer certificates",
  ),
  proxy("cors", "value", "3.4, 3.5"),
  member("host-whitelist", "value", "3.4, 3.5", "Host headers the member accepts on plain http"),
  proxy("logger", "value", "3.4, 3.5"),
  proxy("log-output", "value", "3.4"),
  proxy("log-outputs", "value", "3.4, 3.5"),
  proxy("debug", "boolean", "3.4"),
  proxy("log-level", "value", "3.4, 3.5"),
  member("log-package-levels", "value", "3.4", "capnslog's per-package log levels"),
  proxy("version", "boolean", "3.4, 3.5"),
  member("auto-compaction-retention", "value", "3.4, 3.5", "the member's history compaction"),
  member("auto-compaction-mode", "value", "3.4, 3.5", "the member's history compaction"),
  member(
    "enable-pprof",
    "boolean",
    "3.4, 3.5",
    "the member serves Go's profiler under /debug/pprof",
  ),
  member("metrics", "value", "3.4, 3.5", "detail of the member's gRPC metrics"),
  member("auth-token", "value", "3.4, 3.5", "the member's authentication tokens"),
  member("bcrypt-cost", "value", "3.4, 3.5", "the member's password hashing"),
  member(
    "enable-grpc-gateway",
    "boolean",
    "3.4, 3.5",
    "the member serves the v3 JSON gateway (the proxy forwards it to members)",
  ),
  member(
    "experimental-initial-corrupt-check",
    "boolean",
    "3.4, 3.5",
    "the member's data corruption check at start",
  ),
  member(
    "experimental-corrupt-check-time",
    "value",
    "3.4, 3.5",
    "the member's periodic corruption check",
  ),
  member("experimental-enable-v2v3", "value", "3.4, 3.5", "v2 API emulated on v3 storage"),
  member(
    "experimental-backend-bbolt-freelist-type",
    "value",
    "3.4",
    "the member database's freelist",
  ),
  member(
    "experimental-enable-lease-checkpoint",
    "boolean",
    "3.4, 3.5",
    "lease TTL checkpoints between members",
  ),
  member(
    "experimental-compaction-batch-limit",
    "value",
    "3.4, 3.5",
    "revisions per compaction batch",
  ),
  member("force-new-cluster", "boolean", "3.4, 3.5", "restart a member as a one-member cluster"),
  member(
    "auth-token-ttl",
    "value",
    "3.4.10+, 3.5",
    "lifetime of the member's authentication tokens",
  ),
  member("unsafe-no-fsync", "boolean", "3.4.10+, 3.5", "the member skips fsync"),
  member(
    "experimental-watch-progress-notify-interval",
    "value",
    "3.4.11+, 3.5",
    "the member's watch progress notifications",
  ),
  member(
    "experimental-warning-apply-duration",
    "value",
    "3.4.16+, 3.5",
    "the member's slow-request warning",
  ),
  proxy("max-concurrent-streams", "value", "3.4.20+, 3.5"),
  member(
    "experimental-enable-lease-checkpoint-persist",
    "boolean",
    "3.4.20+, 3.5",
    "lease TTL checkpoints on disk",
  ),
  member(
    "listen-client-http-urls",
    "value",
    "3.4.25+, 3.5",
    "the member's HTTP-only client listeners",
  ),
  proxy("tls-min-version", "value", "3.4.25+, 3.5"),
  proxy("tls-max-version", "value", "3.4.25+, 3.5"),
  member(
    "next-cluster-version-compatible",
    "boolean",
    "3.4.31+",
    "a 3.4 member joining a 3.5 cluster",
  ),
  member("backend-bbolt-freelist-type", "value", "3.5", "the member database's freelist"),
  member("socket-reuse-port", "boolean", "3.5", "SO_REUSEPORT on the member's listeners"),
  member("socket-reuse-address", "boolean", "3.5", "SO_REUSEADDR on the member's listeners"),
  member("raft-read-timeout", "value", "3.5", "the member's peer connection read timeout"),
  member("raft-write-timeout", "value", "3.5", "the member's peer connection write timeout"),
  member("v2-deprecation", "value", "3.5", "the member's v2 store deprecation stage"),
  member(
    "client-cert-file",
    "value",
    "3.5",
    "the member's own client certificate (for its gateway)",
  ),
  member("client-key-file", "value", "3.5", "key of the member's own client certificate"),
  member("peer-client-cert-file", "value", "3.5", "the member's client certificate towards peers"),
  member(
    "peer-client-key-file",
    "value",
    "3.5",
    "key of the member's client certificate towards peers",
  ),
  member(
    "self-signed-cert-validity",
    "value",
    "3.5",
    "validity in years of --auto-tls certificates",
  ),
  member("enable-log-rotation", "boolean", "3.5", "rotation of a log file"),
  member("log-rotation-config-json", "value", "3.5", "rotation of a log file"),
  member("experimental-enable-distributed-tracing", "boolean", "3.5", "OpenTelemetry tracing"),
  member("experimental-distributed-tracing-address", "value", "3.5", "OpenTelemetry tracing"),
  member("experimental-distributed-tracing-service-name", "value", "3.5", "OpenTelemetry tracing"),
  member("experimental-distributed-tracing-instance-id", "value", "3.5", "OpenTelemetry tracing"),
  member("experimental-downgrade-check-time", "value", "3.5", "the member's downgrade monitor"),
  member("experimental-memory-mlock", "boolean", "3.5", "the member locks its database in RAM"),
  member(
    "experimental-txn-mode-write-with-shared-buffer",
    "boolean",
    "3.5",
    "the member's transaction buffers",
  ),
  member(
    "experimental-bootstrap-defrag-threshold-megabytes",
    "value",
    "3.5",
    "database defragmentation at start",
  ),
  member(
    "experimental-compact-hash-check-enabled",
    "boolean",
    "3.5.5+",
    "the leader's compaction hash check",
  ),
  member(
    "experimental-compact-hash-check-time",
    "value",
    "3.5.5+",
    "the leader's compaction hash check",
  ),
  member(
    "experimental-distributed-tracing-sampling-rate",
    "value",
    "3.5.11+",
    "OpenTelemetry tracing",
  ),
  member(
    "experimental-stop-grpc-service-on-defrag",
    "boolean",
    "3.5.14+",
    "the member stops serving while it defragments",
  ),
  member(
    "experimental-snapshot-catchup-entries",
    "value",
    "3.5.14+",
    "raft entries kept for slow followers",
  ),
  member(
    "experimental-compaction-sleep-interval",
    "value",
    "3.5.16+",
    "pause between compaction batches",
  ),
  legacy("cluster-active-size"),
  legacy("cluster-remove-delay"),
  legacy("cluster-sync-interval"),
  legacy("config"),
  legacy("force"),
  legacy("max-result-buffer"),
  legacy("max-retry-attempts"),
  legacy("peer-heartbeat-interval"),
  legacy("peer-election-timeout"),
  legacy("retry-interval"),
  legacy("snapshot"),
  legacy("v"),
  legacy("vv"),
]

const byName = new Map(etcdFlags.map((flag) => [flag.name, flag]))

export const etcdFlag = (name: string): EtcdFlag | undefined => byName.get(name)

/**
 * Keys of etcd's YAML config file that are not flag names: the TLS sections, and one key spelled
 * differently from its flag. Each maps to the flag it sets.
 */
export const configFileSections: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  "client-transport-security": {
    "cert-file": "cert-file",
    "key-file": "key-file",
    "client-cert-file": "client-cert-file",
    "client-key-file": "client-key-file",
    "client-cert-auth": "client-cert-auth",
    "trusted-ca-file": "trusted-ca-file",
    "auto-tls": "auto-tls",
    "allowed-hostname": "client-cert-allowed-hostname",
  },
  "peer-transport-security": {
    "cert-file": "peer-cert-file",
    "key-file": "peer-key-file",
    "client-cert-file": "peer-client-cert-file",
    "client-key-file": "peer-client-key-file",
    "client-cert-auth": "peer-client-cert-auth",
    "trusted-ca-file": "peer-trusted-ca-file",
    "auto-tls": "peer-auto-tls",
    "allowed-cn": "peer-cert-allowed-cn",
    "allowed-hostname": "peer-cert-allowed-hostname",
  },
  "socket-options": {
    "reuse-port": "socket-reuse-port",
    "reuse-address": "socket-reuse-address",
  },
}

export const configFileAliases: Readonly<Record<string, string>> = {
  "experimental-snapshot-catch-up-entries": "experimental-snapshot-catchup-entries",
}
