import path from 'node:path';
import tls from 'node:tls';
import { stringify } from 'yaml';
import { pskCipherList } from '../transport/tls-psk.js';

/**
 * `moat convert`: a Mosquitto 2.x configuration file in, the equivalent Moat
 * YAML out, with a comment for every option that does not map (and why).
 * Pure: files are read through the callbacks, nothing else touches the disk.
 * Semantics follow mosquitto.conf(5) and Mosquitto 2.0's behaviour; the option
 * table is in docs/migrating-from-mosquitto.md.
 */

export interface MosquittoFiles {
  /** The text of a file; throws when it cannot be read. */
  readFile(file: string): string;
  /** The names of a directory's entries; throws when it cannot be read. */
  readDir(dir: string): string[];
}

interface Line {
  /** Place in reading order (include_dir files where Mosquitto reads them). */
  index: number;
  at: string;
  text: string;
  name: string;
  args: string[];
  /** Everything after the option name (paths may hold spaces). */
  rest: string;
  included: boolean;
}

interface Src<T> {
  value: T;
  line: Line;
}

/** Authentication and access control settings: global, or a listener's with per_listener_settings. */
interface Security {
  allowAnonymous?: Src<boolean>;
  passwordFile?: Src<string>;
  aclFile?: Src<string>;
  /** Mosquitto's `identity:hexkey` file, which Moat reads as it is (`tls.psk_file`); used by psk_hint listeners only. */
  pskFile?: Src<string>;
}

interface Listener extends Security {
  line?: Line;
  port: number;
  host?: string;
  /** `listener 0 <path>`: a Unix domain socket (Moat's `path`), absolute. */
  path?: string;
  /** `protocol websockets`: MQTT over WebSockets (`websocket: {}`); absent or `protocol mqtt`: plain MQTT. */
  websockets?: Line;
  socketDomain?: Src<'ipv4' | 'ipv6'>;
  certfile?: Src<string>;
  keyfile?: Src<string>;
  cafile?: Src<string>;
  crlfile?: Src<string>;
  /** `psk_hint`: TLS-PSK on this listener (Mosquitto's switch for it), with the keys of `psk_file`. */
  pskHint?: Src<string>;
  /** `ciphers` (TLS 1.2) and `ciphers_tls1.3`: colon-separated OpenSSL names. */
  ciphers?: Src<string>;
  ciphers13?: Src<string>;
  tlsVersion?: Src<'TLSv1.2' | 'TLSv1.3'>;
  requireCertificate?: Src<boolean>;
  identity?: Src<'common_name' | 'subject'>;
  maxConnections?: Src<number>;
}

const BOOLEAN: Record<string, boolean> = { true: true, false: false };

/** Mosquitto's tls_version (the oldest version accepted, since 2.0) as Moat's tls.min_version. */
const TLS_VERSIONS = new Map<string, 'TLSv1.2' | 'TLSv1.3'>([['tlsv1.2', 'TLSv1.2'], ['tlsv1.3', 'TLSv1.3']]);

/** The largest HTTP request head Node reads (its default --max-http-header-size), for a WebSocket upgrade too. */
const HEAD_LIMIT = 16 * 1024;

/** Options with no Moat equivalent, and why. */
const UNMAPPED: Record<string, string> = {
  pid_file: 'Moat writes no pid file; run it under a service manager, which knows the pid',
  user: 'Moat does not switch user; start it as the user it should run as',
  log_dest: 'Moat logs to standard output (log.format: json or pretty); the service manager keeps the log',
  log_type: 'Moat has log levels instead (log.level: trace, debug, info, warn, error)',
  log_facility: 'Moat does not log to syslog itself',
  log_timestamp: 'every Moat log line carries a timestamp',
  log_timestamp_format: 'Moat log lines carry epoch milliseconds (JSON) or the pretty format',
  connection_messages: 'Moat logs connections at info level (log.level)',
  autosave_interval: 'Moat writes every change as it happens (store.durability: strict)',
  autosave_on_changes: 'Moat writes every change as it happens (store.durability: strict)',
  persistence_file: "Moat keeps its own database (moat.db in store.directory); Mosquitto's database is not read, so its sessions and retained messages do not move over",
  persistent_client_expiration: 'MQTT 5 clients set their own session expiry (capabilities.maximum_session_expiry_interval caps it); Moat has no expiry for MQTT 3.1.1 persistent sessions',
  allow_zero_length_clientid: 'Moat always assigns an identifier to a client that sends an empty one with a clean session, as MQTT requires',
  auto_id_prefix: 'Moat chooses the identifiers it assigns itself',
  clientid_prefixes: 'Moat has no client identifier prefix rule; use authorization rules with %c',
  check_retain_source: 'Moat checks permissions when a retained message is published and when it is delivered',
  allow_duplicate_messages: 'Moat always delivers one copy per client for overlapping subscriptions (MQTT 5 behaviour)',
  memory_limit: 'Moat bounds memory with per-client limits (limits.max_queued_bytes, max_inflight_bytes, max_outbound_buffer)',
  message_size_limit: 'deprecated in Mosquitto; use limits.max_packet_size',
  queue_qos0_messages: 'Moat does not queue QoS 0 messages for offline clients',
  set_tcp_nodelay: 'Moat always sets TCP_NODELAY',
  upgrade_outgoing_qos: 'non-standard; Moat follows the MQTT specification',
  retry_interval: 'Moat resends unacknowledged messages when the client reconnects, as MQTT 3.1.1 and 5 require',
  store_clean_interval: 'Moat has no message store to clean',
  plugin: 'Mosquitto plugins do not load in Moat; see its HTTP hook (authentication type http) or the library API',
  auth_plugin: 'Mosquitto plugins do not load in Moat; see its HTTP hook (authentication type http) or the library API',
  global_plugin: 'Mosquitto plugins do not load in Moat',
  auth_plugin_deny_special_chars: 'Mosquitto plugins do not load in Moat',
  websockets_log_level: 'ignored: Moat logs WebSocket clients as it logs the others (log.level)',
  websockets_headers_size: `ignored: Moat takes HTTP request heads up to ${HEAD_LIMIT} bytes (Node's limit) without a setting`,
  http_dir: 'not supported: Moat serves no files (a plain HTTP request to a WebSocket listener gets 426); serve them from a web server',
  bind_interface: 'Moat binds addresses, not interfaces; give the interface address in listener',
  mount_point: 'Moat has no mount points',
  max_qos: 'per listener in Mosquitto; Moat has one broker-wide capabilities.maximum_qos',
  max_topic_alias: 'per listener in Mosquitto; Moat has one broker-wide capabilities.topic_alias_maximum',
  use_username_as_clientid: 'Moat does not replace client identifiers',
  capath: 'Moat reads one CA file (tls.ca_file); concatenate the PEM files of the directory into one',
  dhparamfile: 'Moat uses ECDHE key exchange only',
  tls_engine: 'Moat reads keys from PEM files only',
  tls_engine_kpass_sha1: 'Moat reads keys from PEM files only',
  tls_keyform: 'Moat reads keys from PEM files only',
  require_certificate_hostname: 'not a Moat setting',
};

/** Listener settings: before the first `listener` line they configure Mosquitto's default listener. */
const LISTENER_OPTIONS = new Set([
  'protocol', 'socket_domain', 'certfile', 'keyfile', 'cafile', 'capath', 'require_certificate', 'use_identity_as_username',
  'use_subject_as_username', 'max_connections', 'bind_interface', 'http_dir', 'max_qos', 'max_topic_alias', 'mount_point',
  'use_username_as_clientid', 'ciphers', 'ciphers_tls1.3', 'crlfile', 'dhparamfile', 'tls_engine', 'tls_engine_kpass_sha1',
  'tls_keyform', 'tls_version', 'psk_hint',
]);

/** Authentication and access control: per listener with `per_listener_settings true`. */
const SECURITY_OPTIONS = new Set(['allow_anonymous', 'password_file', 'acl_file', 'psk_file', 'allow_zero_length_clientid', 'auto_id_prefix', 'auth_plugin', 'plugin']);

/** Options of a bridge (`connection <name>` section). */
const BRIDGE_OPTIONS = new Set([
  'address', 'addresses', 'cleansession', 'local_cleansession', 'keepalive_interval', 'idle_timeout', 'local_clientid',
  'local_password', 'local_username', 'notifications', 'notifications_local_only', 'notification_topic', 'remote_clientid',
  'remote_password', 'remote_username', 'restart_timeout', 'round_robin', 'start_type', 'threshold', 'topic', 'try_private',
  'clientid', 'username', 'password',
]);

const KNOWN = new Set([
  ...Object.keys(UNMAPPED), ...LISTENER_OPTIONS, ...SECURITY_OPTIONS, 'listener', 'port', 'bind_address', 'per_listener_settings',
  'persistence', 'persistence_location', 'max_inflight_messages', 'max_inflight_bytes', 'max_queued_messages', 'max_queued_bytes',
  'max_packet_size', 'sys_interval', 'retain_available', 'include_dir', 'connection',
]);

/** True when `text` is clearly a mosquitto.conf: Mosquitto option lines ("listener 1883") and no YAML map. */
export function looksLikeMosquittoConfig(text: string): boolean {
  let options = 0;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (/^(-\s|[\w.-]+:(\s|$)|---|\{|\[)/.test(line)) return false;
    const name = line.split(/\s/)[0]!;
    if (KNOWN.has(name) || name.startsWith('bridge_') || name.startsWith('plugin_opt_') || name.startsWith('auth_opt_')) options++;
  }
  return options > 0;
}

/**
 * Mosquitto's include_dir order: letters compared regardless of case first, then upper case before
 * lower case of the same letter (00.conf, A.conf, a.conf, B.conf).
 */
export function compareIncludeNames(a: string, b: string): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    const folded = upper(x) - upper(y);
    if (folded !== 0) return folded;
    if (x !== y) return x - y;
  }
  return a.length - b.length;
}

function upper(code: number): number {
  return code >= 97 && code <= 122 ? code - 32 : code;
}

class Converter {
  private readonly base: string;
  private readonly notConverted: Array<{ index: number; text: string }> = [];
  private read = 0;
  private readonly notes: string[] = [];
  private readonly explicit: Listener[] = [];
  private readonly defaultListener: Listener = { port: 1883 };
  private defaultUsed = false;
  private perListener = false;
  private readonly security: Security = {};
  private persistence?: Src<boolean>;
  private persistenceLocation?: Src<string>;
  private readonly limits = new Map<string, Src<number>>();
  private retainAvailable?: Src<boolean>;
  private sysInterval?: Src<number>;
  private bridge?: Line;

  constructor(private readonly file: string, private readonly files: MosquittoFiles) {
    this.base = path.dirname(path.resolve(file));
  }

  convert(text: string): string {
    const lines = this.expand(text);
    // Mosquitto requires per_listener_settings before the security options it affects: it holds for the whole file.
    for (const line of lines) if (line.name === 'per_listener_settings' && BOOLEAN[line.args[0] ?? ''] !== undefined) this.perListener = BOOLEAN[line.args[0]!]!;
    for (const line of lines) this.option(line);
    return this.render();
  }

  /** The lines of the file, with each include_dir replaced by the lines of its *.conf files in Mosquitto's order. */
  private expand(text: string): Line[] {
    const lines: Line[] = [];
    for (const line of this.lines(this.file, text, false)) {
      if (line.name !== 'include_dir') {
        lines.push(line);
        continue;
      }
      const dir = this.resolve(line.rest);
      let names: string[];
      try {
        names = this.files.readDir(dir).filter((n) => n.endsWith('.conf')).sort(compareIncludeNames);
      } catch (err) {
        this.skip(line, `cannot read the directory ${dir}: ${(err as Error).message}`);
        continue;
      }
      for (const name of names) {
        const included = path.join(dir, name);
        try {
          lines.push(...this.lines(included, this.files.readFile(included), true));
        } catch (err) {
          this.skip(line, `cannot read ${included}: ${(err as Error).message}`);
        }
      }
    }
    return lines;
  }

  private lines(file: string, text: string, included: boolean): Line[] {
    const shown = path.relative(this.base, path.resolve(file));
    const name = shown.startsWith('..') || shown === '' ? file : shown;
    const lines: Line[] = [];
    text.split(/\r?\n/).forEach((raw, i) => {
      const t = raw.trim();
      if (t === '' || t.startsWith('#')) return;
      const [option, ...args] = t.split(/\s+/);
      lines.push({ index: this.read++, at: `${name}:${i + 1}`, text: t, name: option!, args, rest: t.slice(option!.length).trim(), included });
    });
    return lines;
  }

  /** Relative paths: Mosquitto took them from its working directory; we take the configuration file's. */
  private resolve(p: string): string {
    return path.resolve(this.base, p);
  }

  private skip(line: Line, why: string): void {
    this.notConverted.push({ index: line.index, text: `${line.at}: ${line.text} — ${why}` });
  }

  private current(): Listener {
    return this.explicit.at(-1) ?? this.defaultListener;
  }

  private option(line: Line): void {
    const { name, args } = line;
    if (this.bridge) {
      if (BRIDGE_OPTIONS.has(name) || name.startsWith('bridge_')) return this.skip(line, `part of bridge "${this.bridge.args[0] ?? ''}" (${this.bridge.at}): Moat has no bridges`);
      this.bridge = undefined;
    }
    if (name === 'connection') {
      this.bridge = line;
      return this.skip(line, 'Moat has no bridges; run a bridge client (or keep a Mosquitto bridge) beside it');
    }
    if (name === 'include_dir') return this.skip(line, 'include_dir is read from the main configuration file only');
    if (name === 'per_listener_settings') return this.flag(line, () => undefined);
    const listener = this.current();
    if (LISTENER_OPTIONS.has(name) && this.explicit.length === 0 && !this.marksDefault(line)) return this.listenerOption(line, listener);
    if (LISTENER_OPTIONS.has(name) && this.explicit.length === 0) this.defaultUsed = true;
    if (LISTENER_OPTIONS.has(name)) return this.listenerOption(line, listener);
    if (SECURITY_OPTIONS.has(name)) return this.securityOption(line, this.perListener ? listener : undefined);
    switch (name) {
      case 'listener': {
        const port = integer(args[0]);
        if (port === undefined || port > 65535 || args.length > 2) return this.skip(line, 'expected "listener <port> [address]"');
        if (port === 0) {
          // Mosquitto 2.0: port 0 with a path is a Unix domain socket; port 0 alone stops it at start.
          if (args[1] === undefined) return this.skip(line, 'a listener with port 0 needs a Unix socket path ("listener 0 <path>")');
          this.explicit.push({ line, port, path: this.resolve(args[1]) });
          return;
        }
        this.explicit.push({ line, port, ...(args[1] !== undefined && { host: args[1] }) });
        return;
      }
      case 'port': {
        const port = integer(args[0]);
        if (port === undefined || port < 1 || port > 65535) return this.skip(line, 'expected a port number');
        this.defaultListener.port = port;
        this.defaultListener.line ??= line;
        this.defaultUsed = true;
        return;
      }
      case 'bind_address':
        if (!args[0]) return this.skip(line, 'expected an address');
        this.defaultListener.host = args[0];
        this.defaultListener.line ??= line;
        this.defaultUsed = true;
        return;
      case 'persistence': return this.flag(line, (v) => (this.persistence = { value: v, line }));
      case 'persistence_location':
        if (!line.rest) return this.skip(line, 'expected a directory');
        this.persistenceLocation = { value: this.resolve(line.rest), line };
        return;
      case 'retain_available': return this.flag(line, (v) => (this.retainAvailable = { value: v, line }));
      case 'sys_interval': return this.count(line, (n) => (this.sysInterval = { value: n, line }));
      case 'max_inflight_messages': case 'max_inflight_bytes': case 'max_queued_messages': case 'max_queued_bytes': case 'max_packet_size': case 'max_keepalive':
        return this.count(line, (n) => this.limits.set(name, { value: n, line }));
      case 'websockets_headers_size':
        // libwebsockets' buffer for request heads (0: its default, 1024 bytes); only a larger one than Node's matters.
        return this.count(line, (n) => this.skip(line, n > HEAD_LIMIT ? `${UNMAPPED[name]}; larger heads, which this value allowed, are refused (HTTP 431)` : UNMAPPED[name]!));
    }
    if (UNMAPPED[name]) return this.skip(line, UNMAPPED[name]);
    if (name.startsWith('plugin_opt_') || name.startsWith('auth_opt_')) return this.skip(line, 'Mosquitto plugins do not load in Moat');
    if (BRIDGE_OPTIONS.has(name) || name.startsWith('bridge_')) return this.skip(line, 'a bridge option outside a "connection" section');
    this.skip(line, 'not a Mosquitto 2.x option that moat convert knows');
  }

  /** Whether a listener option before any `listener` line makes Mosquitto start its default listener (not at its default value). */
  private marksDefault(line: Line): boolean {
    const value = line.args[0];
    if (line.name === 'max_connections') return value !== '-1';
    if (line.name === 'protocol') return value !== 'mqtt';
    if (line.name === 'max_qos') return value !== '2';
    return true;
  }

  private listenerOption(line: Line, listener: Listener): void {
    const { name, args } = line;
    switch (name) {
      case 'protocol':
        if (args[0] === 'mqtt') {
          delete listener.websockets; // the listener's last protocol line counts
          return;
        }
        if (args[0] === 'websockets') {
          listener.websockets = line;
          return;
        }
        return this.skip(line, 'expected mqtt or websockets');
      case 'socket_domain':
        if (args[0] !== 'ipv4' && args[0] !== 'ipv6') return this.skip(line, 'expected ipv4 or ipv6');
        listener.socketDomain = { value: args[0], line };
        return;
      case 'certfile': case 'keyfile': case 'cafile': case 'crlfile':
        if (!line.rest) return this.skip(line, 'expected a file');
        listener[name] = { value: this.resolve(line.rest), line };
        return;
      case 'psk_hint':
        if (!line.rest) return this.skip(line, 'expected a hint');
        if (Buffer.byteLength(line.rest) > 128) return this.skip(line, "longer than 128 bytes, Moat's limit for tls.psk_hint");
        listener.pskHint = { value: line.rest, line };
        return;
      case 'ciphers': case 'ciphers_tls1.3': {
        const names = line.rest.split(':').filter((c) => c !== '');
        if (names.length === 0) return this.skip(line, 'expected a cipher list');
        const tls13 = name === 'ciphers_tls1.3';
        // Moat takes one list, Node's: names starting with TLS_ are TLS 1.3 suites, the others OpenSSL's TLS 1.2 list.
        if (names.some((c) => c.startsWith('TLS_') !== tls13)) {
          return this.skip(line, tls13 ? 'expected TLS 1.3 suite names (TLS_…) only' : 'TLS 1.3 suites (TLS_…) belong in ciphers_tls1.3');
        }
        listener[tls13 ? 'ciphers13' : 'ciphers'] = { value: names.join(':'), line };
        return;
      }
      case 'tls_version': {
        const version = TLS_VERSIONS.get(args[0] ?? '');
        if (args[0] === 'tlsv1.1') return this.skip(line, 'Moat accepts TLS 1.2 and later only: TLS 1.1 clients, which this let in, fail the handshake');
        if (version === undefined || args.length > 1) return this.skip(line, 'expected tlsv1.3, tlsv1.2 or tlsv1.1');
        listener.tlsVersion = { value: version, line };
        return;
      }
      case 'require_certificate': return this.flag(line, (v) => (listener.requireCertificate = { value: v, line }));
      case 'use_identity_as_username': case 'use_subject_as_username':
        return this.flag(line, (v) => {
          const from = name === 'use_identity_as_username' ? 'common_name' : 'subject';
          // use_identity_as_username wins when both are set.
          if (v && !(listener.identity?.value === 'common_name' && from === 'subject')) listener.identity = { value: from, line };
          if (!v && listener.identity?.value === from) delete listener.identity;
        });
      case 'max_connections': return this.count(line, (n) => (listener.maxConnections = { value: n, line }), true);
    }
    this.skip(line, UNMAPPED[name] ?? 'no Moat equivalent');
  }

  private securityOption(line: Line, listener: Listener | undefined): void {
    const target = listener ?? this.security;
    switch (line.name) {
      case 'allow_anonymous': return this.flag(line, (v) => (target.allowAnonymous = { value: v, line }));
      case 'password_file': case 'acl_file': case 'psk_file': {
        if (!line.rest) return this.skip(line, 'expected a file');
        const value = { value: this.resolve(line.rest), line };
        if (line.name === 'password_file') target.passwordFile = value;
        else if (line.name === 'psk_file') target.pskFile = value;
        else target.aclFile = value;
        if (listener && this.explicit.length === 0) this.defaultUsed ||= line.name === 'password_file';
        return;
      }
    }
    this.skip(line, UNMAPPED[line.name] ?? 'no Moat equivalent');
  }

  private flag(line: Line, set: (value: boolean) => void): void {
    const value = BOOLEAN[line.args[0] ?? ''];
    if (value === undefined || line.args.length > 1) return this.skip(line, 'expected true or false');
    set(value);
  }

  private count(line: Line, set: (value: number) => void, allowMinusOne = false): void {
    const value = allowMinusOne && line.args[0] === '-1' ? -1 : integer(line.args[0]);
    if (value === undefined || line.args.length > 1) return this.skip(line, 'expected a whole number');
    set(value);
  }

  private render(): string {
    const all = [...this.explicit, ...(this.defaultUsed ? [this.defaultListener] : [])];
    // A PSK listener without keys: Mosquitto serves nobody on it (unless a plugin has keys); left out, never opened without TLS.
    const keyless = new Set(all.filter((l) => this.isPsk(l) && !this.pskFileOf(l)));
    for (const l of keyless) this.skip(l.pskHint!.line, 'no psk_file, so this PSK listener has no keys (a Mosquitto plugin may have had them): the listener is left out rather than opened without TLS; give it tls.psk_file');
    const listeners = all.filter((l) => !keyless.has(l));
    for (const psk of this.perListener ? all.map((l) => (this.isPsk(l) ? undefined : l.pskFile)) : [all.some((l) => this.isPsk(l)) ? undefined : this.security.pskFile]) {
      if (psk) this.skip(psk.line, 'no PSK listener uses it (psk_hint turns TLS-PSK on in Mosquitto, on a listener without certfile): these keys serve nobody');
    }
    const out: string[] = [];
    const emit = (line: string): number => out.push(line);

    // Authentication: certificate identity first (it passes clients without a certificate on), then the PSK
    // identity (it passes clients without one), then the password file.
    const auth: string[] = [];
    const identities = listeners.filter((l) => l.identity && !this.isPsk(l));
    const identity = identities[0]?.identity;
    if (identity) {
      auth.push('  - type: certificate', `    username_from: ${identity.value}   # ${identity.line.text} (${identity.line.at})`,
        "    require_username_match: false   # Mosquitto replaces the client's user name with the certificate's");
      for (const other of identities.slice(1)) {
        if (other.identity!.value !== identity.value) this.skip(other.identity!.line, `Moat takes the user name from certificates one way for all listeners: ${identity.value} (${identity.line.at})`);
      }
      for (const l of listeners) {
        if (l.certfile && l.keyfile && !l.identity && l.requireCertificate?.value) this.notes.push(`${l.line?.at ?? 'default listener'}: Moat's certificate authentication applies to every TLS listener, so a client certificate is enough on this one too (Mosquitto also asked it for a password)`);
      }
    }
    // use_identity_as_username on a psk_hint listener: the PSK identity is the user name (Moat's psk provider).
    const pskListeners = listeners.filter((l) => this.isPsk(l));
    for (const l of pskListeners) {
      if (l.identity?.value === 'subject') this.skip(l.identity.line, 'a PSK client presents no certificate, so it has no subject to be named after');
    }
    const pskIdentity = pskListeners.find((l) => l.identity?.value === 'common_name')?.identity;
    if (pskIdentity) {
      auth.push(`  - type: psk   # ${pskIdentity.line.text} (${pskIdentity.line.at}) on a psk_hint listener: the PSK identity is the user name`,
        "    require_username_match: false   # Mosquitto replaces the client's user name with the PSK identity");
      for (const l of pskListeners) {
        if (l.identity?.value !== 'common_name') this.notes.push(`${l.line?.at ?? 'default listener'}: Moat's psk authentication applies to every PSK listener, so the key alone lets a client in on this one too (Mosquitto checked the user name and password of its CONNECT)`);
      }
    }
    const passwordFiles = this.perListener ? listeners.map((l) => l.passwordFile).filter((p): p is Src<string> => p !== undefined) : this.security.passwordFile ? [this.security.passwordFile] : [];
    const passwordFile = passwordFiles[0];
    if (passwordFile) auth.push('  - type: password_file', `    path: ${scalar(passwordFile.value)}   # ${passwordFile.line.at}`);
    const aclFiles = this.perListener ? listeners.map((l) => l.aclFile).filter((p): p is Src<string> => p !== undefined) : this.security.aclFile ? [this.security.aclFile] : [];
    const aclFile = aclFiles[0];
    if (this.perListener) {
      for (const [list, what] of [[passwordFiles, 'password file'], [aclFiles, 'ACL file']] as const) {
        for (const other of list.slice(1)) {
          if (other.value !== list[0]!.value) this.skip(other.line, `per_listener_settings: Moat has one ${what} for all listeners, ${list[0]!.value} (${list[0]!.line.at}); merge this one into it`);
        }
        if (list.length > 0 && list.length < listeners.length) this.notes.push(`per_listener_settings true: Moat's authentication and authorization apply to every listener, so the ${what} of ${list[0]!.line.at} now also applies to listeners that had none`);
      }
    }

    emit(`# Moat configuration converted from ${path.resolve(this.file)} by \`moat convert\`.`);
    emit(`# Paths are absolute: Mosquitto resolves relative paths against its working directory, Moat against`);
    emit(`# this file's directory; relative ones were taken from ${this.base}.`);

    // Listeners
    emit('');
    emit('listeners:');
    if (all.length === 0) {
      const explicit = (this.perListener ? this.defaultListener : this.security).allowAnonymous;
      emit('  # Mosquitto 2 without a listener listens on this machine only (127.0.0.1 and ::1, port 1883) and accepts anonymous clients.');
      emit("  # Add a listener with host: '::1' if clients connect over IPv6.");
      emit('  - host: 127.0.0.1');
      emit('    port: 1883');
      if (explicit && !explicit.value) {
        emit(`    allow_anonymous: false   # ${explicit.line.at}: Mosquitto 2.0 ignores this without a listener and accepts anonymous clients anyway; kept as written`);
      } else emit('    allow_anonymous: true');
    }
    const authConfigured = auth.length > 0;
    for (const l of all) {
      if (keyless.has(l)) {
        emit(`  # ${l.line?.text ?? 'the default listener'}${l.line ? ` (${l.line.at})` : ''}: left out, a PSK listener without psk_file (see "Not converted")`);
        continue;
      }
      emit(l.line ? `  # ${l.line.text} (${l.line.at})` : '  # the default listener');
      if (l.path) {
        emit(`  - path: ${scalar(l.path)}   # a Unix domain socket (port 0)`);
        if (l.socketDomain) this.skip(l.socketDomain.line, 'a Unix socket listener has no IP address family');
      } else {
        emit(`  - host: ${scalar(this.host(l))}`);
        emit(`    port: ${l.port}`);
      }
      const anonymous = (this.perListener ? l : this.security).allowAnonymous;
      emit(`    allow_anonymous: ${anonymous?.value ?? false}   # ${anonymous ? anonymous.line.at : 'Mosquitto 2 default once a listener is configured'}`);
      // A Unix socket is local, like loopback: Moat starts it without authentication.
      if (!(anonymous?.value ?? false) && !authConfigured && !l.path && !isLoopback(this.host(l))) {
        this.notes.push(`${l.line?.at ?? 'default listener'}: no password_file and anonymous clients refused: Mosquitto accepts nobody on this listener, and Moat refuses to start such a network listener; configure authentication or set allow_anonymous`);
      }
      if (l.websockets) this.renderWebSocket(l, emit);
      this.renderTls(l, emit);
    }

    if (auth.length > 0) {
      emit('');
      emit('authentication:');
      out.push(...auth);
    }
    if (aclFile) {
      emit('');
      emit('authorization:');
      emit(`  acl_file: ${scalar(aclFile.value)}   # ${aclFile.line.at}`);
    }

    emit('');
    emit('store:');
    if (this.persistence?.value) {
      const dir = this.persistenceLocation?.value ?? this.base;
      emit(`  type: sqlite   # persistence true (${this.persistence.line.at})`);
      emit(`  directory: ${scalar(dir)}   # ${this.persistenceLocation ? this.persistenceLocation.line.at : "Mosquitto's default is its working directory"}; Moat keeps moat.db there`);
    } else {
      emit(`  type: memory   # ${this.persistence ? `persistence false (${this.persistence.line.at})` : "Mosquitto's default: no persistence"}`);
      if (this.persistenceLocation) this.skip(this.persistenceLocation.line, 'persistence is off');
    }

    this.renderLimits(listeners, emit);
    if (this.retainAvailable) {
      emit('');
      emit('capabilities:');
      emit(`  retain_available: ${this.retainAvailable.value}   # ${this.retainAvailable.line.at}`);
    }
    if (this.sysInterval) {
      emit('');
      emit(`sys_interval: ${this.sysInterval.value}   # ${this.sysInterval.line.at}`);
    }

    const header: string[] = [];
    if (this.notes.length > 0) header.push('#', '# Differences to check:', ...this.notes.map((n) => `#   ${oneLine(n)}`));
    if (this.notConverted.length > 0) header.push('#', '# Not converted:', ...this.notConverted.sort((a, b) => a.index - b.index).map((n) => `#   ${oneLine(n.text)}`));
    out.splice(3, 0, ...header);
    return `${out.join('\n')}\n`;
  }

  /** Mosquitto binds every address (IPv4 and IPv6) unless told otherwise. */
  private host(l: Listener): string {
    if (l.host) return l.host;
    return l.socketDomain?.value === 'ipv4' ? '0.0.0.0' : '::';
  }

  /** `protocol websockets`: Moat's `websocket` map with its defaults; TLS (wss://) as on any listener. */
  private renderWebSocket(l: Listener, emit: (line: string) => void): void {
    emit(`    websocket: {}   # protocol websockets (${l.websockets!.at}): ${l.certfile && l.keyfile ? 'wss' : 'ws'}://, path /mqtt`);
    this.notes.push(`${l.line?.at ?? 'default listener'}: protocol websockets: Mosquitto answers WebSocket clients on any URL path, Moat only on websocket.path ` +
      '(default /mqtt, the path of MQTT.js and most browser clients); set path: if your clients connect to another one. ' +
      'Moat can also limit the web pages that may connect (websocket.allowed_origins, docs/configuration.md)');
  }

  /** A listener Mosquitto serves with TLS-PSK: psk_hint, and no certificate (Mosquitto refuses both on one listener). */
  private isPsk(l: Listener): boolean {
    return l.pskHint !== undefined && !l.certfile && !l.keyfile;
  }

  /** The keys of a PSK listener: its own psk_file with per_listener_settings true, else the global one. */
  private pskFileOf(l: Listener): Src<string> | undefined {
    return (this.perListener ? l : this.security).pskFile;
  }

  private renderTls(l: Listener, emit: (line: string) => void): void {
    if (l.pskHint && !this.isPsk(l)) {
      this.skip(l.pskHint.line, 'Mosquitto refuses certificate and PSK encryption on one listener ("Cannot use both certificate and psk encryption in a single listener"); converted with the certificate only');
    }
    const psk = this.isPsk(l) ? this.pskFileOf(l) : undefined;
    const certs = l.certfile && l.keyfile ? { cert: l.certfile, key: l.keyfile } : undefined;
    if (!certs && (l.certfile || l.keyfile)) this.skip((l.certfile ?? l.keyfile)!.line, 'TLS needs both certfile and keyfile; this listener stays plain MQTT');
    if (!certs && !psk) {
      for (const s of [l.cafile, l.crlfile, l.requireCertificate, l.identity, l.ciphers, l.ciphers13, l.tlsVersion]) if (s) this.skip(s.line, 'this listener has no certfile and keyfile, so no TLS');
      return;
    }
    emit('    tls:');
    if (certs) {
      emit(`      cert_file: ${scalar(certs.cert.value)}   # ${certs.cert.line.at}`);
      emit(`      key_file: ${scalar(certs.key.value)}   # ${certs.key.line.at}`);
    }
    if (psk) {
      emit(`      psk_file: ${scalar(psk.value)}   # ${psk.line.at}: Mosquitto's identity:hexkey lines, read as they are`);
      emit(`      psk_hint: ${scalar(l.pskHint!.value)}   # ${l.pskHint!.line.at}: TLS-PSK on this listener, without certificate`);
    }
    const noCertificates = 'a PSK listener uses no certificates';
    if (l.cafile) {
      if (certs) emit(`      ca_file: ${scalar(l.cafile.value)}   # ${l.cafile.line.at}`);
      else this.skip(l.cafile.line, noCertificates);
    }
    if (l.requireCertificate && !certs) this.skip(l.requireCertificate.line, noCertificates);
    else if (l.requireCertificate?.value) emit(`      require_client_certificate: true   # ${l.requireCertificate.line.at}`);
    else if (l.identity && certs) emit(`      request_client_certificate: true   # ${l.identity.line.at}: the certificate names the user`);
    if (l.crlfile) {
      if (certs && (l.requireCertificate?.value || l.identity)) {
        emit(`      crl_file: ${scalar(l.crlfile.value)}   # ${l.crlfile.line.at}`);
        this.notes.push(`${l.crlfile.line.at}: crlfile: Moat checks revocation along the client's whole chain, so with intermediate CAs the file needs the list of each CA in it (docs/configuration.md); and a list past its next update stops Moat at start: renew it in time`);
      } else {
        this.skip(l.crlfile.line, certs ? 'Mosquitto uses it only with require_certificate true, and this listener asks clients for no certificate' : noCertificates);
      }
    }
    if (l.tlsVersion) emit(`      min_version: ${l.tlsVersion.value}   # ${l.tlsVersion.line.text} (${l.tlsVersion.line.at})`);
    const ciphers = cipherList(l, psk !== undefined);
    if (ciphers) emit(`      ciphers: ${scalar(ciphers.value)}   # ${ciphers.why}`);
  }

  private renderLimits(listeners: Listener[], emit: (line: string) => void): void {
    const lines: string[] = [];
    const limit = (key: string, value: number, src: Line, why = ''): number => lines.push(`  ${key}: ${value}   # ${src.at}${why}`);
    const inflight = this.limits.get('max_inflight_messages');
    if (inflight) {
      if (inflight.value === 0 || inflight.value > 65535) limit('max_inflight_messages', 65535, inflight.line, `: ${inflight.value === 0 ? 'no limit' : inflight.value} in Mosquitto; 65535 is Moat's largest`);
      else limit('max_inflight_messages', inflight.value, inflight.line);
    } else this.notes.push("max_inflight_messages: Mosquitto's default is 20, Moat's 1000 (docs/limits.md); Moat's is kept");
    for (const key of ['max_inflight_bytes', 'max_queued_bytes']) {
      const s = this.limits.get(key);
      if (s) limit(key, s.value, s.line, s.value === 0 ? ': no limit, in both' : '');
    }
    const queued = this.limits.get('max_queued_messages');
    if (queued && queued.value === 0) this.skip(queued.line, "no limit in Mosquitto; Moat always bounds the queue (default 1000, or set limits.max_queued_messages)");
    else if (queued) limit('max_queued_messages', queued.value, queued.line);
    const packet = this.limits.get('max_packet_size');
    if (packet && packet.value === 0) limit('max_packet_size', 268435460, packet.line, ': no limit in Mosquitto; the MQTT maximum');
    else if (packet && packet.value < 128) this.skip(packet.line, "Moat's smallest max_packet_size is 128");
    else if (packet) limit('max_packet_size', Math.min(packet.value, 268435460), packet.line);
    else this.notes.push("max_packet_size: Mosquitto accepts packets of any size by default, Moat up to 1 MiB (limits.max_packet_size); Moat's is kept");
    const keepalive = this.limits.get('max_keepalive');
    if (keepalive && keepalive.value > 65535) this.skip(keepalive.line, 'must be 0-65535');
    else if (keepalive) limit('max_keepalive', keepalive.value, keepalive.line, keepalive.value === 0 ? '' : ': MQTT 3.1.1 clients asking for more (or 0) are refused, as in Mosquitto 2.0.12 and later');
    else this.notes.push("max_keepalive: Mosquitto's default is 65535, which refuses 3.1.1 clients asking for keep-alive 0; Moat's default is no cap");
    const withMax = listeners.filter((l) => l.maxConnections);
    for (const l of withMax) {
      const s = l.maxConnections!;
      if (s.value === -1) continue;
      if (s.value === 0) this.skip(s.line, 'must be at least 1 in Moat');
      else if (listeners.length === 1) limit('max_connections', s.value, s.line, ': per listener in Mosquitto, for the whole broker in Moat');
      else this.skip(s.line, 'per listener in Mosquitto; Moat has one limit for the whole broker (limits.max_connections)');
    }
    if (lines.length === 0) return;
    emit('');
    emit('limits:');
    for (const line of lines) emit(line);
  }
}

/**
 * Mosquitto's two cipher lists, `ciphers` (TLS 1.2) and `ciphers_tls1.3`, as Moat's one (Node's: names starting
 * with TLS_ are TLS 1.3 suites, the others the TLS 1.2 list). A list without TLS 1.3 suites keeps Node's, as
 * Mosquitto keeps OpenSSL's; one of TLS 1.3 suites alone would turn TLS 1.2 off, so Moat's default TLS 1.2 list
 * (on a PSK listener with the PSK suites first, src/transport/tls-psk.ts) is written after them.
 */
function cipherList(l: Listener, psk: boolean): { value: string; why: string } | undefined {
  if (!l.ciphers && !l.ciphers13) return undefined;
  const tls12 = l.ciphers?.value ?? (psk ? pskCipherList() : tls.DEFAULT_CIPHERS).split(':').filter((c) => !c.startsWith('TLS_')).join(':');
  const why = [
    l.ciphers13 ? `TLS 1.3: ciphers_tls1.3 (${l.ciphers13.line.at})` : "TLS 1.3: Node's suites, as Mosquitto's default",
    l.ciphers ? `TLS 1.2: ciphers (${l.ciphers.line.at})` : "TLS 1.2: Moat's default list, written out (TLS 1.3 suites alone would turn TLS 1.2 off)",
  ];
  return { value: l.ciphers13 ? `${l.ciphers13.value}:${tls12}` : tls12, why: why.join('; ') };
}

function integer(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** A YAML scalar, quoted only when it must be. */
function scalar(value: string): string {
  return stringify(value, { lineWidth: 0 }).trimEnd();
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}

/** Converts the text of a mosquitto.conf (its path gives the directory relative paths and include_dir start from) to Moat YAML. */
export function convertMosquittoConfig(file: string, text: string, files: MosquittoFiles): string {
  return new Converter(file, files).convert(text);
}
