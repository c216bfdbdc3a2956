export { Guard, type GuardCounters, type GuardEvent, type GuardOptions } from './guard.js';
export { BanList, type Ban, type BanKind, type BanPersistence, type Suspect } from './bans.js';
export { addressKey, AddressSet, isAddressOrNetwork } from './addresses.js';
