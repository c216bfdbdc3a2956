/** Moat's library API: `import { createBroker } from 'moat-mqtt'`. */
export { Broker, createBroker, type BrokerEvents, type ListenerAddress } from './broker/broker.js';
export type { BrokerOptions, BrokerLimits, ListenerOptions, TlsListenerOptions } from './broker/options.js';
export { DEFAULT_LIMITS } from './broker/options.js';
export type {
  BrokerHooks, ClientInfo, ClientIdentity, CertificateIdentity, AuthenticateRequest, AuthenticateResult, PublishRequest, HandshakeFailure,
  PublishAllowance,
} from './broker/hooks.js';
export type { SessionOwner } from './broker/session-caps.js';
export type { AuthMethod, AuthExchange, AuthStep } from './broker/enhanced-auth.js';
export { composeHooks } from './broker/hooks.js';
export type { Logger } from './broker/logger.js';
export type { ListenerInfo, PeerInfo } from './broker/connection.js';
export { MemoryStore } from './store/memory.js';
export { SqliteStore, RedisStore, StoreError } from './store/index.js';
export {
  createSecurity, AccessControl, CertificateProvider, HttpAuthProvider, JwtProvider, PasswordFile, PasswordProvider, ScramMethod,
  MemoryAudit, loggerAudit, createEntry, formatEntry,
  type Security, type SecurityOptions, type AuthenticationSource, type AuthProvider, type ProviderAnswer, type AclConfig, type AclRule,
  type AuditEvent, type AuditLog,
  Guard, BanList, type Ban, type BanKind, type GuardEvent, type GuardEvents, type GuardOptions, type GuardCounters, type RateLimitedEvent,
} from './security/index.js';
export { PublishRate, type RateLimit } from './security/guard/publish-rate.js';
export type * from './store/store.js';
export { createServer, logReload, type MoatServer, type ServerOptions, type ReloadResult } from './server/index.js';
export { ConfigError, loadConfigFile, type LoadedConfig } from './config/load.js';
export { ProtocolError } from './protocol/errors.js';
export type { QoS, ProtocolVersion } from './protocol/constants.js';
