/** The public API for Effect programs that embed the proxy. */
export * from "./domain/Config.js"
export * from "./domain/Discovery.js"
export * from "./domain/Endpoints.js"
export * from "./domain/Errors.js"
export * from "./domain/Member.js"
export { DataDir } from "./services/DataDir.js"
export { Discovery, type DiscoveryShape, type DiscoveryStatus } from "./services/Discovery.js"
export { DiscoveryHttp } from "./services/DiscoveryHttp.js"
export { SrvResolver } from "./services/SrvResolver.js"
export { Forwarder } from "./services/Forwarder.js"
export { Listeners } from "./services/Listeners.js"
export { MemberClient, MemberFetchError } from "./services/MemberClient.js"
export { MemberList } from "./services/MemberList.js"
export { Metrics } from "./services/Metrics.js"
export {
  classifyGrpc,
  classifyHttp,
  classifyHttp2,
  guardGrpc,
  guardHttp,
  guardHttp2,
  isGrpcCall,
  ModeGuard,
} from "./services/ModeGuard.js"
export { GrpcReadOnly } from "./services/GrpcReadOnly.js"
export { Http2Relay } from "./services/Http2Relay.js"
export { Shuffler } from "./services/Shuffler.js"
export { TlsMaterial } from "./services/TlsMaterial.js"
export { LoggingLive } from "./layers/Logging.js"
export { MembersLive, ProxyLive } from "./layers/ProxyLayer.js"
