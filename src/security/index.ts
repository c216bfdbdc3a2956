import { readFileSync } from 'node:fs';
import type { AuthMethod } from '../broker/enhanced-auth.js';
import type { BrokerHooks } from '../broker/hooks.js';
import { SCRAM_METHOD, ScramMethod } from './scram.js';
import { AccessControl, mergeAcl, type AclConfig } from './acl.js';
import { loggerAudit, type AuditLog } from './audit.js';
import { createAuthChain, type AuthProvider } from './authentication.js';
import { createAuthorizer, principalOf } from './authorizer.js';
import { PublishRate, type RateLimit } from './guard/publish-rate.js';
import { parseMosquittoAcl } from './mosquitto-acl.js';
import { CertificateProvider, type CertificateProviderOptions } from './certificate-provider.js';
import { PskProvider } from './psk-provider.js';
import { PasswordFile, PasswordProvider } from './password-provider.js';
import { JwtProvider, type JwtProviderOptions } from './jwt-provider.js';
import { HttpAuthProvider, httpAuthorizer, type HttpProviderOptions } from './http-provider.js';
import { Guard, type GuardEvent, type GuardOptions } from './guard/index.js';
import { RuntimeSecurity } from './runtime-store.js';
import { RuntimeProvider } from './runtime-provider.js';
import { DynamicSecurity, RESPONSE_RULE, type DynsecExecutor } from './dynsec.js';

export { AccessControl, mergeAcl, type AclAction, type AclConfig, type AclRule, type Principal } from './acl.js';
export { MemoryAudit, loggerAudit, type AuditEvent, type AuditLog } from './audit.js';
export { createAuthChain, type AuthChain, type AuthProvider, type ChainResult, type ConcealedRefusal, type ProviderAnswer } from './authentication.js';
export { createAuthorizer } from './authorizer.js';
export { parseMosquittoAcl, AclFileError } from './mosquitto-acl.js';
export { PasswordFile, PasswordProvider } from './password-provider.js';
export { JwtProvider, type JwtAlgorithm, type JwtProviderOptions } from './jwt-provider.js';
export { HttpAuthProvider, httpAuthorizer, type HttpProviderOptions } from './http-provider.js';
export { CertificateProvider, type CertificateProviderOptions } from './certificate-provider.js';
export { PskProvider, type PskProviderOptions } from './psk-provider.js';
export {
  Guard, BanList, AddressSet, addressKey, type Ban, type BanKind, type BanPersistence, type GuardEvent, type GuardEvents, type GuardOptions, type GuardCounters,
  type OffencePersistence, type RateLimitedEvent, type ReportedEvent,
} from './guard/index.js';
export { SCRAM_METHOD, ScramMethod, type ScramUsers } from './scram.js';
export {
  RuntimeSecurity, RuntimeSecurityError, type Binding, type RuntimeGroup, type RuntimePersistence, type RuntimeRole, type RuntimeRule, type RuntimeUser, type UserChange,
} from './runtime-store.js';
export { RuntimeProvider } from './runtime-provider.js';
export { DynamicSecurity, DYNSEC_TOPIC, DYNSEC_RESPONSE_TOPIC, handleRequest as handleDynsecRequest, type DynsecCaller, type DynsecExecutor, type DynsecResponse } from './dynsec.js';
export { PasswordFileError, createEntry, formatEntry, parsePasswordFile, verifyPassword } from './password-file.js';

export type AuthenticationSource =
  | { type: 'passwordFile'; path: string; /** Re-read on change (default true). */ watch?: boolean }
  | ({ type: 'jwt' } & JwtProviderOptions)
  | ({ type: 'http' } & HttpProviderOptions)
  | {
    /** A verified TLS client certificate authenticates the client (see CertificateProvider). */
    type: 'certificate';
    usernameFrom?: 'commonName' | 'subject';
    requireUsernameMatch?: boolean;
    /** Also check the CONNECT password against this password file: certificate and password. */
    alsoPasswordFile?: { path: string; watch?: boolean };
  }
  | {
    /** A client that proved a TLS pre-shared key is its identity (see PskProvider). */
    type: 'psk';
    requireUsernameMatch?: boolean;
  }
  | { type: 'provider'; provider: AuthProvider };

export interface SecurityOptions {
  /** Providers in the order they are tried. */
  authentication?: AuthenticationSource[];
  /** Topic permissions; when given, what no rule allows is denied. */
  authorization?: {
    /** A Mosquitto acl_file, read as it is. */
    aclFile?: string;
    rules?: AclConfig;
    /** Also ask an HTTP service about publishes and subscriptions (both it and the rules must allow). */
    http?: HttpProviderOptions;
  };
  audit?: AuditLog;
  /** Detection and response (bans, flapping): on by default whenever authentication is configured; false turns it off. */
  guard?: GuardOptions | false;
  /** The broker's CONNECT timeout, ms (default 10 s): a password check waits its turn at most this less a margin (passwordCheckWaitMs). */
  connectTimeoutMs?: number;
  /** Told of every guard event (as `security.guard.on('event', …)` is); the one given at creation stays across reloads. */
  onGuardEvent?: (event: GuardEvent) => void;
  /** The publishing rate limit of every client whose roles carry none (default: none). */
  rateLimit?: RateLimit;
  /**
   * Users, groups and roles changed while the broker runs (`security.runtime`), kept in the store (see attach), and
   * with `controlApi` Mosquitto's dynamic-security API on them for clients holding `adminRole` (default "admin").
   * Off when absent; turning it on or off, or changing it, needs a restart.
   */
  runtime?: { controlApi?: boolean; adminRole?: string; executeControl?: DynsecExecutor };
}

interface SecurityLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface Security {
  /** Give these to createBroker({ hooks }). */
  readonly hooks: BrokerHooks[];
  /** MQTT 5 enhanced authentication methods (SCRAM-SHA-256 when there are password files): createBroker({ authMethods }). */
  readonly authMethods: Record<string, AuthMethod>;
  /** The permissions in force; change them at runtime (setRole, setUser...) and connected clients follow at once. */
  readonly acl: AccessControl | undefined;
  readonly passwordFiles: readonly PasswordFile[];
  /** Bans and detection (undefined when nothing authenticates or the guard is off). */
  readonly guard: Guard | undefined;
  /** Users, groups and roles changed at runtime, kept in the store (undefined unless `runtime` is given). */
  readonly runtime: RuntimeSecurity | undefined;
  /** Mosquitto's dynamic-security API (undefined unless `runtime.controlApi`); its answers go where `attach` says. */
  readonly dynamicSecurity: DynamicSecurity | undefined;
  /** Reads password and ACL files again (SIGHUP); a file that no longer parses keeps its previous content. */
  reload(): void;
  /**
   * Applies new options (a configuration reload): providers rebuilt (their files read again), rules and ACL
   * file replaced, connected clients judged by the new rules at once. Throws, changing nothing, if a file
   * cannot be read. Returns what changed but needs a restart (authentication or authorization turned on or
   * off, the HTTP authorizer, SCRAM appearing or going). The audit log stays the one given at creation.
   */
  update(next: SecurityOptions): string[];
  close(): void;
}

/** Builds Moat's security layer: the authentication chain, the authorizer and the audit trail. Throws for unreadable or malformed files, naming file and line. */
export function createSecurity(options: SecurityOptions, logger: SecurityLogger): Security {
  const audit = options.audit ?? loggerAudit(logger);
  const passwordFiles: PasswordFile[] = [];
  const providers: AuthProvider[] = [];
  /** Providers built here from sources; a library's own `provider` objects are never closed by a reload. */
  const owned = new WeakSet<AuthProvider>();
  const closeOwned = (list: readonly AuthProvider[]): void => {
    for (const provider of list) if (owned.has(provider)) provider.close?.();
  };
  /** Builds the providers of `sources` (reading their files now: a bad file throws, changing nothing). */
  const buildProviders = (sources: readonly AuthenticationSource[], connectTimeoutMs = options.connectTimeoutMs): { providers: AuthProvider[]; passwordFiles: PasswordFile[] } => {
    const files: PasswordFile[] = [];
    const built: AuthProvider[] = [];
    try {
      for (const source of sources) {
        const provider = buildProvider(source, files, logger, connectTimeoutMs);
        if (source.type !== 'provider') owned.add(provider);
        built.push(provider);
      }
    } catch (err) {
      closeOwned(built);
      throw err;
    }
    return { providers: built, passwordFiles: files };
  };
  const initial = buildProviders(options.authentication ?? []);
  // Runtime users come after the configured providers: a user a password file defines is the file's.
  const runtime = options.runtime ? new RuntimeSecurity() : undefined;
  const runtimeProvider = runtime ? new RuntimeProvider(runtime, options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }) : undefined;
  const withRuntime = (list: AuthProvider[]): AuthProvider[] => (runtimeProvider ? [...list, runtimeProvider] : list);
  providers.push(...withRuntime(initial.providers));
  passwordFiles.push(...initial.passwordFiles);
  const hooks: BrokerHooks[] = [{
    handshakeFailed: ({ listener, remoteAddress, reason }) =>
      audit.record({ event: 'tls.refused', clientId: '', ...(remoteAddress !== undefined && { remoteAddress }), listener, reason }),
  }];
  // The guard is on whenever something authenticates (unless turned off): it answers before the providers.
  // Without authentication, only when configured (a `guard:` section): static bans, connection limits, flapping.
  const guard = options.guard !== false && (providers.length > 0 || options.guard !== undefined) ? new Guard(options.guard ?? {}, audit) : undefined;
  if (guard && options.onGuardEvent) guard.on('event', options.onGuardEvent);
  if (providers.length > 0) {
    const chain = createAuthChain(providers, audit);
    hooks.push({ authenticate: guard ? guard.wrap(chain) : chain });
  }
  if (guard) hooks.push(guard.hooks());
  if (guard && providers.length === 0) hooks.push({ screenConnect: (request) => guard.screenConnect(request) });

  let acl: AccessControl | undefined;
  let authorization = options.authorization;
  const aclConfig = (): AclConfig => {
    const parts: AclConfig[] = [];
    if (authorization?.aclFile) parts.push(parseMosquittoAcl(readAclFile(authorization.aclFile), authorization.aclFile));
    if (authorization?.rules) parts.push(authorization.rules);
    return mergeAcl(...parts);
  };
  const adminRole = options.runtime?.adminRole ?? 'admin';
  const controlApi = options.runtime?.controlApi === true;
  /** What the files and YAML declare; the permissions in force add the runtime items the configuration does not name. */
  let declared: AclConfig = {};
  const inForce = (): AclConfig => {
    const config = runtime ? runtime.overlay(declared) : declared;
    // The admins hear the control API's answers.
    return controlApi ? { ...config, roles: { ...config.roles, [adminRole]: [RESPONSE_RULE, ...(config.roles?.[adminRole] ?? [])] } } : config;
  };
  const applyAcl = (config: AclConfig): void => {
    declared = config;
    runtime?.declare({
      user: (name) => Object.hasOwn(config.users ?? {}, name) || passwordFiles.some((file) => file.get(name) !== undefined),
      group: (name) => Object.hasOwn(config.groups ?? {}, name),
      role: (name) => Object.hasOwn(config.roles ?? {}, name),
    });
    acl?.load(inForce());
  };
  runtime?.onChange(() => acl?.load(inForce()));
  const hasRules = (a: SecurityOptions['authorization']): boolean => a?.aclFile !== undefined || a?.rules !== undefined;
  const restriction = { restrictAll: hasRules(authorization) };
  if (restriction.restrictAll || providers.some((p) => p.grantsPermissions)) {
    acl = new AccessControl();
    applyAcl(aclConfig());
    // Without configured rules, only clients whose credentials carry permissions are restricted (by those).
    hooks.push(createAuthorizer(acl, restriction, {
      refused(client, action, topic, reason) {
        audit.record({ event: `${action}.refused`, clientId: client.id, username: client.identity?.username ?? client.username, remoteAddress: client.remoteAddress, listener: client.listener, topic, reason });
      },
    }));
  }

  const executeControl = options.runtime?.executeControl;
  const dynamicSecurity = runtime && acl && controlApi
    ? new DynamicSecurity(runtime, acl, audit, { adminRole, ...(executeControl && { execute: executeControl }) })
    : undefined;
  if (dynamicSecurity) hooks.push(dynamicSecurity.hooks());
  if (authorization?.http) hooks.push(httpAuthorizer(authorization.http));
  let defaultRateLimit = options.rateLimit;
  hooks.push({
    publishAllowance(client) {
      const limit = acl?.rateLimitFor(principalOf(client)) ?? defaultRateLimit;
      if (!limit || (!limit.messagesPerSecond && !limit.bytesPerSecond)) return undefined;
      return new PublishRate(limit, Date.now(), (exceeded, action) => {
        const event = { type: 'rate-limited' as const, clientId: client.id, remoteAddress: client.remoteAddress, limit: exceeded, action };
        // Without authentication there is no guard: the audit line alone.
        const username = client.identity ? client.identity.username : client.username;
        if (guard) guard.report(username === undefined ? event : { ...event, username });
        else audit.record({ event: 'guard.rate-limited', clientId: client.id, remoteAddress: client.remoteAddress, reason: `over its ${exceeded} rate`, action });
      });
    },
  });
  const authMethods: Record<string, AuthMethod> = {};
  // Runtime users log in by password only: a SCRAM exchange ends without the runtime provider, which binds their
  // client identifier and restricts them to their roles.
  if (passwordFiles.length > 0) {
    const scram = new ScramMethod({
      scramCredential: (username) => passwordFiles.map((f) => f.scramCredential(username)).find((c) => c !== undefined),
    }, undefined, audit);
    authMethods[SCRAM_METHOD] = guard ? guard.wrapMethod(scram) : scram;
  }

  return {
    hooks,
    authMethods,
    acl,
    passwordFiles,
    guard,
    runtime,
    dynamicSecurity,
    reload() {
      for (const file of passwordFiles) file.reload();
      if (acl && authorization?.aclFile) {
        try {
          applyAcl(aclConfig());
          logger.info({ file: authorization.aclFile }, 'ACL file reloaded');
        } catch (err) {
          logger.error({ err: (err as Error).message }, 'ACL file not reloaded; the previous rules stay in force');
        }
      } else if (runtime) applyAcl(declared); // the password files may name other users now
    },
    update(next) {
      const nextSources = next.authentication ?? [];
      const nextBuilt = buildProviders(nextSources, next.connectTimeoutMs);
      const wantsAcl = hasRules(next.authorization) || withRuntime(nextBuilt.providers).some((p) => p.grantsPermissions);
      // Turning authentication or authorization on or off changes which hooks the broker runs and each
      // listener's anonymous policy, fixed at start: nothing of it is applied, so nothing is half applied.
      const shape: string[] = [];
      if ((withRuntime(nextBuilt.providers).length > 0) !== (providers.length > 0)) shape.push('authentication turned on or off');
      if (wantsAcl !== (acl !== undefined)) shape.push('authorization turned on or off');
      if (shape.length > 0) {
        closeOwned(nextBuilt.providers);
        logger.warn({ changes: shape }, 'authentication and authorization not reloaded: the running ones stay until a restart');
        return shape;
      }
      const restartNeeded: string[] = [];
      if (!runtime && (nextBuilt.passwordFiles.length > 0) !== (passwordFiles.length > 0)) restartNeeded.push('SCRAM-SHA-256 (password files added or removed)');
      if (JSON.stringify(next.runtime) !== JSON.stringify(options.runtime)) restartNeeded.push('authorization.dynamic_security');
      if (JSON.stringify(next.authorization?.http) !== JSON.stringify(authorization?.http)) restartNeeded.push('authorization.http');
      const previous = authorization;
      authorization = next.authorization;
      // Read before anything changes: an unreadable ACL file changes nothing.
      let nextDeclared: AclConfig;
      try {
        nextDeclared = aclConfig();
      } catch (err) {
        authorization = previous;
        closeOwned(nextBuilt.providers);
        throw err;
      }
      restriction.restrictAll = hasRules(authorization);
      defaultRateLimit = next.rateLimit;
      // Swapped in place: the authentication chain and SCRAM read these arrays on every attempt.
      closeOwned(providers.filter((provider) => !nextBuilt.providers.includes(provider)));
      providers.splice(0, providers.length, ...withRuntime(nextBuilt.providers));
      passwordFiles.splice(0, passwordFiles.length, ...nextBuilt.passwordFiles);
      // After the password files: which users the configuration defines follows them.
      if (acl) applyAcl(nextDeclared);
      for (const file of passwordFiles) logger.info({ file: file.file, users: file.size }, 'password file reloaded');
      if (acl && authorization?.aclFile) logger.info({ file: authorization.aclFile }, 'ACL file reloaded');
      return restartNeeded;
    },
    close() {
      for (const provider of providers) provider.close?.();
    },
  };
}

function buildProvider(source: AuthenticationSource, passwordFiles: PasswordFile[], logger: SecurityLogger, connectTimeoutMs: number | undefined): AuthProvider {
  if (source.type === 'provider') return source.provider;
  if (source.type === 'jwt') return new JwtProvider(source);
  if (source.type === 'http') return new HttpAuthProvider(source);
  if (source.type === 'psk') return new PskProvider(source.requireUsernameMatch === undefined ? {} : { requireUsernameMatch: source.requireUsernameMatch });
  const passwordProvider = (path: string, watch: boolean | undefined): PasswordProvider => {
    const file = new PasswordFile(path, logger);
    if (watch !== false) file.watch();
    passwordFiles.push(file);
    return new PasswordProvider(file, connectTimeoutMs === undefined ? {} : { connectTimeoutMs });
  };
  if (source.type === 'certificate') {
    const options: CertificateProviderOptions = {};
    if (source.usernameFrom) options.usernameFrom = source.usernameFrom;
    if (source.requireUsernameMatch !== undefined) options.requireUsernameMatch = source.requireUsernameMatch;
    if (source.alsoPasswordFile) options.alsoRequire = passwordProvider(source.alsoPasswordFile.path, source.alsoPasswordFile.watch);
    return new CertificateProvider(options);
  }
  return passwordProvider(source.path, source.watch);
}

function readAclFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`${file}: cannot read the ACL file: ${(err as Error).message}`);
  }
}
