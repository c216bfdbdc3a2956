/** Moat's library API: `import { createBroker } from 'moat'`. */
export { Broker, createBroker, type BrokerEvents, type ListenerAddress } from './broker/broker.js';
export type { BrokerOptions, BrokerLimits, ListenerOptions } from './broker/options.js';
export { DEFAULT_LIMITS } from './broker/options.js';
export type {
  BrokerHooks, ClientInfo, AuthenticateRequest, AuthenticateResult, PublishRequest,
} from './broker/hooks.js';
export { composeHooks } from './broker/hooks.js';
export type { Logger } from './broker/logger.js';
export type { ListenerInfo, PeerInfo } from './broker/connection.js';
export { MemoryStore } from './store/memory.js';
export type * from './store/store.js';
export { ProtocolError } from './protocol/errors.js';
export type { QoS, ProtocolVersion } from './protocol/constants.js';
