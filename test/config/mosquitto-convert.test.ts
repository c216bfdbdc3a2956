import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { compareIncludeNames, convertMosquittoConfig, looksLikeMosquittoConfig } from '../../src/config/mosquitto.js';
import type { FileConfig } from '../../src/config/schema.js';

/** The pure Mosquitto → Moat converter, on files held in memory. */

const MAIN = '/etc/mq/mosquitto.conf';

interface Converted {
  yaml: string;
  config: FileConfig;
  /** The comment lines of the output. */
  comments: string[];
}

function convert(text: string, files: Record<string, string> = {}): Converted {
  const yaml = convertMosquittoConfig(MAIN, text, {
    readFile(file) {
      const content = files[file];
      if (content === undefined) throw new Error('ENOENT');
      return content;
    },
    readDir(dir) {
      const names = Object.keys(files).filter((f) => path.dirname(f) === dir).map((f) => path.basename(f));
      if (names.length === 0) throw new Error('ENOENT');
      return names.reverse();
    },
  });
  const comments = yaml.split('\n').filter((l) => l.trim().startsWith('#') || l.includes('   # '));
  return { yaml, config: parse(yaml) as FileConfig, comments };
}

/** The comment about a line, asserted to exist. */
function comment(c: Converted, pattern: RegExp): string {
  const found = c.comments.find((l) => pattern.test(l));
  assert.ok(found, `no comment matching ${pattern} in:\n${c.yaml}`);
  return found;
}

describe('moat convert: listeners', () => {
  it("no listener: Mosquitto 2's local-only mode, 127.0.0.1:1883 with anonymous clients", () => {
    const c = convert('# nothing but a comment\n\nsys_interval 10\n');
    assert.deepEqual(c.config.listeners, [{ host: '127.0.0.1', port: 1883, allow_anonymous: true }]);
    parseConfig(c.yaml, '/tmp/moat.yaml');
  });

  it('an explicit allow_anonymous false is kept in local-only mode, with a note that Mosquitto ignores it there', () => {
    const c = convert('allow_anonymous false\n');
    assert.deepEqual(c.config.listeners, [{ host: '127.0.0.1', port: 1883, allow_anonymous: false }]);
    comment(c, /mosquitto\.conf:1: Mosquitto 2\.0 ignores this without a listener/);
  });

  it('listener <port> [address]: every address (IPv4 and IPv6) without one; anonymous refused by default', () => {
    const c = convert('listener 1883\nlistener 1884 10.0.0.5\nlistener 1885\nsocket_domain ipv4\n');
    assert.deepEqual(c.config.listeners, [
      { host: '::', port: 1883, allow_anonymous: false },
      { host: '10.0.0.5', port: 1884, allow_anonymous: false },
      { host: '0.0.0.0', port: 1885, allow_anonymous: false },
    ]);
    comment(c, /# listener 1884 10\.0\.0\.5 \(mosquitto\.conf:2\)/);
  });

  it('port and bind_address make the default listener; listener options before the first listener line are its own', () => {
    const c = convert('port 1999\nbind_address 127.0.0.1\nmax_connections 10\nlistener 2000 127.0.0.2\n');
    assert.deepEqual(c.config.listeners?.map((l) => [l.host, l.port]), [['127.0.0.2', 2000], ['127.0.0.1', 1999]]);
    assert.match(comment(c, /max_connections 10/), /per listener in Mosquitto/);
  });

  it('a listener option before any listener line starts the default listener on port 1883, as Mosquitto does', () => {
    const c = convert('max_connections 5\nlistener 18934 127.0.0.1\nallow_anonymous true\n');
    assert.deepEqual(c.config.listeners?.map((l) => [l.host, l.port, l.allow_anonymous]), [['127.0.0.1', 18934, true], ['::', 1883, true]]);
  });

  it('protocol websockets becomes websocket: {} on the listener, which keeps its other options; protocol mqtt stays plain MQTT', () => {
    const c = convert('listener 1883 127.0.0.1\nprotocol mqtt\nlistener 9001\nprotocol websockets\nhttp_dir /www\nmax_connections 7\nallow_anonymous true\n');
    assert.deepEqual(c.config.listeners, [
      { host: '127.0.0.1', port: 1883, allow_anonymous: true },
      { host: '::', port: 9001, allow_anonymous: true, websocket: {} },
    ]);
    comment(c, /^ {4}websocket: \{\} {3}# protocol websockets \(mosquitto\.conf:4\): ws:\/\/, path \/mqtt$/);
    assert.match(comment(c, /mosquitto\.conf:3: protocol websockets: /), /Moat only on websocket\.path \(default \/mqtt/);
    assert.match(comment(c, /mosquitto\.conf:5: http_dir \/www — /), /not supported: Moat serves no files/);
    assert.match(comment(c, /mosquitto\.conf:6: max_connections 7 — /), /per listener in Mosquitto/, 'counted as a listener like any other');
    parseConfig(c.yaml, '/tmp/moat.yaml');
  });

  it('the listener\'s last protocol line counts: protocol mqtt after protocol websockets is plain MQTT', () => {
    const c = convert('listener 9001 127.0.0.1\nprotocol websockets\nprotocol mqtt\n');
    assert.deepEqual(c.config.listeners, [{ host: '127.0.0.1', port: 9001, allow_anonymous: false }]);
    assert.ok(!c.yaml.includes('websocket'), c.yaml);
  });

  it('protocol websockets before any listener line makes the default listener a WebSocket one', () => {
    const c = convert('port 8080\nprotocol websockets\nallow_anonymous true\n');
    assert.deepEqual(c.config.listeners, [{ host: '::', port: 8080, allow_anonymous: true, websocket: {} }]);
    comment(c, /mosquitto\.conf:1: protocol websockets: Mosquitto answers WebSocket clients on any URL path/);
  });

  it('wss: certfile, keyfile, cafile and require_certificate of a websockets listener become its tls, as on a TCP listener', () => {
    const c = convert('per_listener_settings true\nlistener 9443 10.0.0.5\nprotocol websockets\ncertfile s.crt\nkeyfile s.key\ncafile ca.crt\nrequire_certificate true\nallow_anonymous true\n');
    assert.deepEqual(c.config.listeners, [{
      host: '10.0.0.5', port: 9443, allow_anonymous: true, websocket: {},
      tls: { cert_file: '/etc/mq/s.crt', key_file: '/etc/mq/s.key', ca_file: '/etc/mq/ca.crt', require_client_certificate: true },
    }]);
    comment(c, /websocket: \{\} {3}# protocol websockets \(mosquitto\.conf:3\): wss:\/\//);
  });

  it('websockets_headers_size and websockets_log_level are ignored, each with the reason; a size beyond Node\'s limit is flagged', () => {
    const c = convert('websockets_headers_size 4096\nwebsockets_log_level 255\nwebsockets_headers_size 65536\nwebsockets_headers_size big\n');
    assert.match(comment(c, /mosquitto\.conf:1: websockets_headers_size 4096 — /), /ignored: Moat takes HTTP request heads up to 16384 bytes \(Node's limit\) without a setting$/);
    assert.match(comment(c, /mosquitto\.conf:2: websockets_log_level 255 — /), /ignored: Moat logs WebSocket clients as it logs the others/);
    assert.match(comment(c, /mosquitto\.conf:3: websockets_headers_size 65536 — /), /larger heads, which this value allowed, are refused \(HTTP 431\)/);
    comment(c, /mosquitto\.conf:4: websockets_headers_size big — expected a whole number/);
    assert.deepEqual(c.config.listeners, [{ host: '127.0.0.1', port: 1883, allow_anonymous: true }], 'global options: no listener made');
  });

  it('allow_anonymous applies to every listener (per_listener_settings false)', () => {
    const c = convert('listener 1883\nlistener 1884\nallow_anonymous true\n');
    assert.deepEqual(c.config.listeners?.map((l) => l.allow_anonymous), [true, true]);
    parseConfig(c.yaml, '/tmp/moat.yaml');
  });

  it('a network listener that nobody can use (no authentication, anonymous refused) is flagged', () => {
    const c = convert('listener 1883\n');
    comment(c, /Mosquitto accepts nobody on this listener, and Moat refuses to start/);
  });
});

describe('moat convert: security', () => {
  it('password_file and acl_file become absolute paths resolved against the directory of mosquitto.conf', () => {
    const c = convert('listener 1883\npassword_file passwd\nacl_file ../acl/rules.acl\nallow_anonymous false\n');
    assert.deepEqual(c.config.authentication, [{ type: 'password_file', path: '/etc/mq/passwd' }]);
    assert.deepEqual(c.config.authorization, { acl_file: '/etc/acl/rules.acl' });
  });

  it('TLS: certfile, keyfile, cafile, require_certificate; use_identity_as_username becomes a certificate source', () => {
    const c = convert('listener 8883\ncertfile certs/s.crt\nkeyfile certs/s.key\ncafile /pki/ca.crt\nrequire_certificate true\nuse_identity_as_username true\n');
    assert.deepEqual(c.config.listeners?.[0]?.tls, {
      cert_file: '/etc/mq/certs/s.crt', key_file: '/etc/mq/certs/s.key', ca_file: '/pki/ca.crt', require_client_certificate: true,
    });
    assert.deepEqual(c.config.authentication, [{ type: 'certificate', username_from: 'common_name', require_username_match: false }]);
  });

  it('use_subject_as_username takes the whole subject; without require_certificate the certificate is still asked for', () => {
    const c = convert('listener 8883\ncertfile s.crt\nkeyfile s.key\ncafile ca.crt\nuse_subject_as_username true\npassword_file pw\n');
    assert.equal(c.config.listeners?.[0]?.tls?.request_client_certificate, true);
    assert.deepEqual(c.config.authentication?.map((a) => [a.type, a.username_from]), [['certificate', 'subject'], ['password_file', undefined]]);
  });

  it('a certfile without keyfile leaves the listener plain, with a comment', () => {
    const c = convert('listener 8883\ncertfile s.crt\ncapath /etc/ssl/certs\n');
    assert.equal(c.config.listeners?.[0]?.tls, undefined);
    comment(c, /certfile s\.crt — TLS needs both certfile and keyfile/);
    comment(c, /capath \/etc\/ssl\/certs — Moat reads one CA file/);
  });

  it('per_listener_settings true: allow_anonymous per listener; one password file for all, with a note; a second one is commented', () => {
    const c = convert([
      'per_listener_settings true',
      'listener 1883 127.0.0.1',
      'allow_anonymous true',
      'listener 8883',
      'password_file users.pw',
      'acl_file users.acl',
      'listener 8884',
      'password_file other.pw',
    ].join('\n'));
    assert.deepEqual(c.config.listeners?.map((l) => l.allow_anonymous), [true, false, false]);
    assert.deepEqual(c.config.authentication, [{ type: 'password_file', path: '/etc/mq/users.pw' }]);
    assert.deepEqual(c.config.authorization, { acl_file: '/etc/mq/users.acl' });
    comment(c, /mosquitto\.conf:8: password_file other\.pw — per_listener_settings: Moat has one password file for all listeners/);
    comment(c, /the ACL file of mosquitto\.conf:6 now also applies to listeners that had none/);
  });

  it('per_listener_settings false: security options after a listener line are still global', () => {
    const c = convert('listener 1883\nlistener 1884\npassword_file pw\nallow_anonymous false\n');
    assert.deepEqual(c.config.listeners?.map((l) => l.allow_anonymous), [false, false]);
    assert.equal(c.config.authentication?.length, 1);
  });
});

describe('moat convert: Unix sockets, revocation lists, TLS versions and ciphers', () => {
  it('listener 0 <path> is a Unix domain socket listener (path:, absolute); its socket_domain is commented', () => {
    const c = convert('listener 0 run/mq.sock\nsocket_domain ipv4\nlistener 0 /var/run/other.sock\nallow_anonymous false\n');
    assert.deepEqual(c.config.listeners, [
      { path: '/etc/mq/run/mq.sock', allow_anonymous: false },
      { path: '/var/run/other.sock', allow_anonymous: false },
    ]);
    comment(c, /# listener 0 run\/mq\.sock \(mosquitto\.conf:1\)/);
    comment(c, /mosquitto\.conf:2: socket_domain ipv4 — a Unix socket listener has no IP address family/);
    assert.ok(!c.yaml.includes('Moat refuses to start such a network listener'), 'a Unix socket is local: Moat starts it without authentication');
    parseConfig(c.yaml, '/tmp/moat.yaml');
  });

  it('crlfile becomes tls.crl_file where client certificates are asked for, with a note; elsewhere it is commented', () => {
    const c = convert('listener 8883\ncertfile s.crt\nkeyfile s.key\ncafile ca.crt\nrequire_certificate true\ncrlfile ca.crl\nlistener 8884\ncertfile s.crt\nkeyfile s.key\ncrlfile ca.crl\n');
    assert.deepEqual(c.config.listeners?.map((l) => l.tls?.crl_file), ['/etc/mq/ca.crl', undefined]);
    assert.equal(c.config.listeners?.[0]?.tls?.require_client_certificate, true);
    assert.match(comment(c, /mosquitto\.conf:6: crlfile: /), /whole chain.*a list past its next update stops Moat at start/);
    comment(c, /mosquitto\.conf:10: crlfile ca\.crl — Mosquitto uses it only with require_certificate true/);
  });

  it('tls_version becomes tls.min_version; tlsv1.1 (older than Moat accepts) and unknown versions are commented', () => {
    const c = convert('listener 8883\ncertfile s.crt\nkeyfile s.key\ntls_version tlsv1.3\nlistener 8884\ncertfile s.crt\nkeyfile s.key\ntls_version tlsv1.2\ntls_version tlsv1.1\ntls_version sslv3\n');
    assert.deepEqual(c.config.listeners?.map((l) => l.tls?.min_version), ['TLSv1.3', 'TLSv1.2']);
    comment(c, /mosquitto\.conf:9: tls_version tlsv1\.1 — Moat accepts TLS 1\.2 and later only/);
    comment(c, /mosquitto\.conf:10: tls_version sslv3 — expected tlsv1\.3, tlsv1\.2 or tlsv1\.1/);
  });

  it('ciphers and ciphers_tls1.3 become one tls.ciphers list: TLS 1.3 suites first; TLS 1.3 suites alone get the TLS 1.2 defaults after them', () => {
    const c = convert([
      'listener 8883', 'certfile s.crt', 'keyfile s.key', 'ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256',
      'listener 8884', 'certfile s.crt', 'keyfile s.key', 'ciphers_tls1.3 TLS_AES_128_GCM_SHA256', 'ciphers ECDHE-RSA-AES256-GCM-SHA384',
      'listener 8885', 'certfile s.crt', 'keyfile s.key', 'ciphers_tls1.3 TLS_CHACHA20_POLY1305_SHA256',
      'ciphers TLS_AES_128_GCM_SHA256', 'ciphers_tls1.3 ECDHE-RSA-AES256-GCM-SHA384',
      'listener 1883', 'ciphers ECDHE-RSA-AES256-GCM-SHA384',
    ].join('\n'));
    const ciphers = c.config.listeners?.map((l) => l.tls?.ciphers);
    assert.equal(ciphers?.[0], 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256', 'TLS 1.3 keeps its default suites');
    assert.equal(ciphers?.[1], 'TLS_AES_128_GCM_SHA256:ECDHE-RSA-AES256-GCM-SHA384');
    assert.ok(ciphers?.[2]?.startsWith('TLS_CHACHA20_POLY1305_SHA256:ECDHE-'), ciphers?.[2]);
    assert.ok(ciphers?.[2]?.split(':').filter((x) => x.startsWith('TLS_')).length === 1, 'no other TLS 1.3 suite');
    assert.equal(ciphers?.[3], undefined);
    assert.match(comment(c, /ciphers: TLS_CHACHA20/), /TLS 1\.2: Moat's default list, written out/);
    comment(c, /mosquitto\.conf:14: ciphers TLS_AES_128_GCM_SHA256 — TLS 1\.3 suites \(TLS_…\) belong in ciphers_tls1\.3/);
    comment(c, /mosquitto\.conf:15: ciphers_tls1\.3 ECDHE-RSA-AES256-GCM-SHA384 — expected TLS 1\.3 suite names/);
    comment(c, /mosquitto\.conf:17: ciphers ECDHE-RSA-AES256-GCM-SHA384 — this listener has no certfile and keyfile, so no TLS/);
  });
});

describe('moat convert: TLS-PSK', () => {
  it('psk_hint with the global psk_file: a PSK listener (tls.psk_file, tls.psk_hint, no certificate); use_identity_as_username: the psk provider', () => {
    const c = convert('listener 8883\npsk_hint moat bridge\nuse_identity_as_username true\nallow_anonymous false\npsk_file keys/psk.txt\n');
    assert.deepEqual(c.config.listeners, [{
      host: '::', port: 8883, allow_anonymous: false, tls: { psk_file: '/etc/mq/keys/psk.txt', psk_hint: 'moat bridge' },
    }]);
    assert.deepEqual(c.config.authentication, [{ type: 'psk', require_username_match: false }]);
    comment(c, /psk_file: \/etc\/mq\/keys\/psk\.txt {3}# mosquitto\.conf:5: Mosquitto's identity:hexkey lines/);
    comment(c, /- type: psk {3}# use_identity_as_username true \(mosquitto\.conf:3\) on a psk_hint listener/);
  });

  it('certificate and PSK identities side by side; a PSK listener without use_identity_as_username is noted; use_subject_as_username is commented there', () => {
    const c = convert([
      'listener 8883', 'certfile s.crt', 'keyfile s.key', 'cafile ca.crt', 'require_certificate true', 'use_identity_as_username true',
      'listener 8884', 'psk_hint a', 'use_identity_as_username true', 'ciphers_tls1.3 TLS_AES_128_GCM_SHA256',
      'listener 8885', 'psk_hint b', 'use_subject_as_username true', 'password_file pw', 'psk_file psk.txt',
    ].join('\n'));
    assert.deepEqual(c.config.authentication, [
      { type: 'certificate', username_from: 'common_name', require_username_match: false },
      { type: 'psk', require_username_match: false },
      { type: 'password_file', path: '/etc/mq/pw' },
    ]);
    assert.deepEqual(c.config.listeners?.map((l) => [l.tls?.cert_file, l.tls?.psk_hint]), [['/etc/mq/s.crt', undefined], [undefined, 'a'], [undefined, 'b']]);
    assert.match(c.config.listeners?.[1]?.tls?.ciphers ?? '', /^TLS_AES_128_GCM_SHA256:ECDHE-PSK-CHACHA20-POLY1305:PSK-/, 'the PSK suites follow for TLS 1.2');
    comment(c, /mosquitto\.conf:13: use_subject_as_username true — a PSK client presents no certificate/);
    comment(c, /mosquitto\.conf:11: Moat's psk authentication applies to every PSK listener/);
  });

  it('per_listener_settings true: each PSK listener has its own psk_file; one without is left out, never opened without TLS', () => {
    const c = convert([
      'per_listener_settings true',
      'listener 8883 127.0.0.1', 'psk_hint one', 'psk_file one.psk', 'allow_anonymous true',
      'listener 8884', 'psk_hint none',
      'listener 8885 127.0.0.1', 'psk_file unused.psk', 'allow_anonymous true',
      'listener 8886 127.0.0.1', 'certfile s.crt', 'keyfile s.key', 'psk_hint both', 'psk_file both.psk',
    ].join('\n'));
    assert.deepEqual(c.config.listeners?.map((l) => [l.port, l.tls]), [
      [8883, { psk_file: '/etc/mq/one.psk', psk_hint: 'one' }],
      [8885, undefined],
      [8886, { cert_file: '/etc/mq/s.crt', key_file: '/etc/mq/s.key' }],
    ]);
    comment(c, /mosquitto\.conf:7: psk_hint none — no psk_file, so this PSK listener has no keys .* left out rather than opened without TLS/);
    comment(c, /# listener 8884 \(mosquitto\.conf:6\): left out/);
    comment(c, /mosquitto\.conf:9: psk_file unused\.psk — no PSK listener uses it/);
    comment(c, /mosquitto\.conf:14: psk_hint both — Mosquitto refuses certificate and PSK encryption on one listener/);
    comment(c, /mosquitto\.conf:15: psk_file both\.psk — no PSK listener uses it/);
  });

  it('a psk_file without any psk_hint listener is commented', () => {
    const c = convert('listener 1883 127.0.0.1\npsk_file psk.txt\n');
    comment(c, /mosquitto\.conf:2: psk_file psk\.txt — no PSK listener uses it \(psk_hint turns TLS-PSK on/);
    assert.equal(c.config.listeners?.[0]?.tls, undefined);
  });
});

describe('moat convert: store, limits and the rest', () => {
  it('persistence true with persistence_location: the SQLite store in that directory (absolute)', () => {
    const c = convert('persistence true\npersistence_location data/\n');
    assert.deepEqual(c.config.store, { type: 'sqlite', directory: '/etc/mq/data' });
  });

  it("persistence false, or none (Mosquitto's default), keeps state in memory", () => {
    assert.deepEqual(convert('persistence false\n').config.store, { type: 'memory' });
    const c = convert('sys_interval 5\n');
    assert.deepEqual(c.config.store, { type: 'memory' });
    comment(c, /Mosquitto's default: no persistence/);
  });

  it('max_keepalive maps to limits.max_keepalive', () => {
    const c = convert('listener 1883\nmax_keepalive 300\n');
    assert.equal((c.config.limits as Record<string, unknown>).max_keepalive, 300);
  });

  it('limits: max_connections (one listener), max_packet_size, max_inflight_messages, max_queued_messages; sys_interval', () => {
    const c = convert('listener 1883\nmax_connections 500\nmax_packet_size 65536\nmax_inflight_messages 20\nmax_queued_messages 300\nmax_queued_bytes 0\nsys_interval 30\nretain_available false\n');
    assert.deepEqual(c.config.limits, { max_connections: 500, max_packet_size: 65536, max_inflight_messages: 20, max_queued_messages: 300, max_queued_bytes: 0 });
    assert.equal(c.config.sys_interval, 30);
    assert.deepEqual(c.config.capabilities, { retain_available: false });
    parseConfig(c.yaml, '/tmp/moat.yaml');
  });

  it("Mosquitto's 'no limit' values become Moat's largest, or stay Moat's default with a comment", () => {
    const c = convert('max_inflight_messages 0\nmax_packet_size 0\nmax_queued_messages 0\nmax_connections -1\n');
    assert.deepEqual(c.config.limits, { max_inflight_messages: 65535, max_packet_size: 268435460 });
    comment(c, /max_queued_messages 0 — no limit in Mosquitto; Moat always bounds the queue/);
    parseConfig(c.yaml, '/tmp/moat.yaml');
  });

  it('defaults that differ are named: inflight window and packet size', () => {
    const c = convert('listener 1883 127.0.0.1\n');
    comment(c, /max_inflight_messages: Mosquitto's default is 20, Moat's 1000/);
    comment(c, /max_packet_size: Mosquitto accepts packets of any size by default/);
  });

  it('options without an equivalent become comments naming the option, its line and why', () => {
    const c = convert('pid_file /run/m.pid\nuser mosquitto\nlog_dest file /var/log/m.log\nautosave_interval 60\n');
    assert.match(comment(c, /mosquitto\.conf:1: pid_file \/run\/m\.pid — /), /no pid file/);
    assert.match(comment(c, /mosquitto\.conf:2: user mosquitto — /), /does not switch user/);
    assert.match(comment(c, /mosquitto\.conf:3: log_dest file/), /standard output/);
    assert.match(comment(c, /mosquitto\.conf:4: autosave_interval 60 — /), /every change/);
  });

  it('a bridge section is commented line by line until the next ordinary option', () => {
    const c = convert('connection cloud\naddress broker.example:1883\ntopic sensors/# out 1\nbridge_protocol_version mqttv311\nsys_interval 20\n');
    comment(c, /mosquitto\.conf:1: connection cloud — Moat has no bridges/);
    comment(c, /mosquitto\.conf:3: topic sensors\/# out 1 — part of bridge "cloud" \(mosquitto\.conf:1\)/);
    comment(c, /mosquitto\.conf:4: bridge_protocol_version/);
    assert.equal(c.config.sys_interval, 20);
  });

  it('unknown and invalid lines are commented, never fatal', () => {
    const c = convert('frobnicate 3\nlistener abc\nallow_anonymous maybe\nmax_packet_size -5\nlistener 0\n\t  \n:::\n');
    comment(c, /frobnicate 3 — not a Mosquitto 2\.x option/);
    comment(c, /listener abc — expected "listener <port> \[address\]"/);
    comment(c, /allow_anonymous maybe — expected true or false/);
    comment(c, /max_packet_size -5 — expected a whole number/);
    comment(c, /mosquitto\.conf:5: listener 0 — a listener with port 0 needs a Unix socket path/);
    parseConfig(c.yaml, '/tmp/moat.yaml');
  });
});

describe('moat convert: include_dir', () => {
  it("reads every *.conf in Mosquitto's order (case-insensitive, upper case first), resolved against the file's directory", () => {
    const c = convert('listener 1883 127.0.0.1\ninclude_dir conf.d\n', {
      '/etc/mq/conf.d/b.conf': 'sys_interval 2\n',
      '/etc/mq/conf.d/A.conf': 'sys_interval 1\npid_file /x\n',
      '/etc/mq/conf.d/B.conf': 'sys_interval 3\n',
      '/etc/mq/conf.d/README': 'sys_interval 99\n',
    });
    assert.equal(c.config.sys_interval, 2, 'A.conf, B.conf, b.conf: the last one read wins');
    assert.match(c.yaml, /sys_interval: 2 {3}# conf\.d\/b\.conf:1/);
    comment(c, /conf\.d\/A\.conf:2: pid_file \/x/);
  });

  it("sorts like Mosquitto's documented example", () => {
    assert.deepEqual(['b.conf', 'A.conf', '01.conf', 'a.conf', 'B.conf', '00.conf'].sort(compareIncludeNames),
      ['00.conf', '01.conf', 'A.conf', 'a.conf', 'B.conf', 'b.conf']);
  });

  it('an unreadable include_dir, and include_dir inside an included file, are comments', () => {
    const c = convert('include_dir /nowhere\ninclude_dir conf.d\n', { '/etc/mq/conf.d/x.conf': 'include_dir /more\n' });
    comment(c, /mosquitto\.conf:1: include_dir \/nowhere — cannot read the directory \/nowhere/);
    comment(c, /conf\.d\/x\.conf:1: include_dir \/more — include_dir is read from the main configuration file only/);
  });
});

describe('looksLikeMosquittoConfig', () => {
  it('recognises Mosquitto configuration files', () => {
    assert.equal(looksLikeMosquittoConfig('# Place your local configuration in /etc/mosquitto/conf.d/\n\npid_file /run/mosquitto/mosquitto.pid\npersistence true\n'), true);
    assert.equal(looksLikeMosquittoConfig('listener 1883\nallow_anonymous true\n'), true);
    assert.equal(looksLikeMosquittoConfig('password_file /etc/mosquitto/passwd\r\n'), true);
  });

  it('does not mistake YAML, empty files or other text for one', () => {
    assert.equal(looksLikeMosquittoConfig('listeners:\n  - port: 1883\n'), false);
    assert.equal(looksLikeMosquittoConfig('allow_anonymous: true\nlistener: 1883\n'), false);
    assert.equal(looksLikeMosquittoConfig('# only a comment\n\n'), false);
    assert.equal(looksLikeMosquittoConfig('hello world\n'), false);
    assert.equal(looksLikeMosquittoConfig('---\nlisteners: []\n'), false);
  });
});
