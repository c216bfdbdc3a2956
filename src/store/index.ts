export type * from './store.js';
export { MemoryStore } from './memory.js';
export { SqliteStore, StoreError, SCHEMA_VERSION, type Durability, type SqliteStoreOptions } from './sqlite.js';
export { RedisStore, REDIS_SCHEMA_VERSION, type RedisStoreOptions } from './redis.js';
