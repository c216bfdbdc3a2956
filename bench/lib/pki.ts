import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * A throwaway PKI made with the openssl command, for the TLS tests and the TLS
 * benchmark row: a CA, a server certificate for 127.0.0.1 / localhost, a client
 * certificate (CN=sensor-7) from that CA, and a client certificate from a CA
 * nobody trusts.
 */
export interface TestPki {
  dir: string;
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
  strangerCertFile: string;
  strangerKeyFile: string;
  ca: Buffer;
  serverCert: Buffer;
  serverKey: Buffer;
  clientCert: Buffer;
  clientKey: Buffer;
  strangerCert: Buffer;
  strangerKey: Buffer;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

function authority(dir: string, name: string): void {
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.crt`]);
}

function issue(dir: string, ca: string, name: string, subject: string, extensions: string): void {
  openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', subject,
    '-keyout', `${name}.key`, '-out', `${name}.csr`]);
  writeFileSync(path.join(dir, `${name}.ext`), extensions);
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial',
    '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.crt`]);
}

export function makePki(): TestPki {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-pki-'));
  authority(dir, 'ca');
  authority(dir, 'stranger-ca');
  issue(dir, 'ca', 'server', '/CN=localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  issue(dir, 'ca', 'client', '/CN=sensor-7/O=Example', 'extendedKeyUsage=clientAuth\n');
  issue(dir, 'stranger-ca', 'stranger', '/CN=sensor-7', 'extendedKeyUsage=clientAuth\n');
  // Readable by all: Mosquitto started as root reads its key as the unprivileged user it switches to.
  chmodSync(dir, 0o755);
  for (const name of readdirSync(dir)) chmodSync(path.join(dir, name), 0o644);
  const file = (name: string): string => path.join(dir, name);
  const read = (name: string): Buffer => readFileSync(file(name));
  return {
    dir,
    caFile: file('ca.crt'), serverCertFile: file('server.crt'), serverKeyFile: file('server.key'),
    clientCertFile: file('client.crt'), clientKeyFile: file('client.key'),
    strangerCertFile: file('stranger.crt'), strangerKeyFile: file('stranger.key'),
    ca: read('ca.crt'), serverCert: read('server.crt'), serverKey: read('server.key'),
    clientCert: read('client.crt'), clientKey: read('client.key'),
    strangerCert: read('stranger.crt'), strangerKey: read('stranger.key'),
  };
}
