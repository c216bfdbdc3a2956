export {
  Guard, type ClaimingExchange, type GuardCounters, type GuardEvent, type GuardEvents, type GuardOptions, type RateLimitedEvent, type ReportedEvent,
} from './guard.js';
export { BanList, type Ban, type BanKind, type BanPersistence, type Suspect } from './bans.js';
export { Offenders, type Offence, type OffencePersistence } from './offenders.js';
export { addressKey, AddressSet, isAddressOrNetwork } from './addresses.js';
