/** The public API for Effect programs that embed the proxy. */
export * from "./domain/Config.js"
export * from "./domain/Flag.js"
export * from "./domain/Discovery.js"
export * from "./domain/Endpoints.js"
export * from "./domain/Errors.js"
export * from "./domain/Member.js"
export { DataDir } from "./services/DataDir.js"
export {
  Discovery,
  type DiscoveryShape,
  type DiscoveryStatus,
} from "./services/cluster/Discovery.js"
export { DiscoveryHttp } from "./services/cluster/DiscoveryHttp.js"
export { SrvResolver } from "./services/cluster/SrvResolver.js"
export { Forwarder } from "./services/request/Forwarder.js"
export { Http1Front } from "./services/request/Http1Front.js"
export { Upstream } from "./services/request/Upstream.js"
export { Listeners } from "./services/request/Listeners.js"
export { MemberClient, MemberFetchError } from "./services/cluster/MemberClient.js"
export { MemberList } from "./services/cluster/MemberList.js"
export { Metrics } from "./services/Metrics.js"
export * from "./domain/Admission.js"
export * from "./domain/Limits.js"
export * from "./domain/Mode.js"
export * from "./domain/Status.js"
export * from "./domain/Readiness.js"
export * from "./domain/TlsSettings.js"
export { ModeGuard } from "./services/request/ModeGuard.js"
export { OwnEndpoints } from "./services/request/OwnEndpoints.js"
export { ProxyIdentity } from "./services/request/ProxyIdentity.js"
export { RequestGate } from "./services/request/RequestGate.js"
export { GrpcReadOnly } from "./services/request/GrpcReadOnly.js"
export { Http2Relay } from "./services/request/Http2Relay.js"
export { Shuffler } from "./services/cluster/Shuffler.js"
export { TlsMaterial, TlsFileError } from "./services/TlsMaterial.js"
export { MetricsListener } from "./services/request/MetricsListener.js"
export { selfSignedCertificate } from "./services/SelfSignedCert.js"
export { LoggingLive } from "./layers/Logging.js"
export { ReloadOnSighup } from "./layers/Reload.js"
export {
  ConfiguredDiscovery,
  MembersLive,
  ProxyFromContext,
  ProxyLive,
} from "./layers/ProxyLayer.js"
export { resolveProxyConfig, type ResolvedProxyConfig } from "./cli/proxyConfig.js"
