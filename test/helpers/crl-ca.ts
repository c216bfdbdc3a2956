import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * A small certificate authority run with `openssl ca` (a configuration, index.txt and serial in a temporary
 * directory), for revocation tests: it issues client certificates, revokes them and writes CRLs.
 */
export class CrlAuthority {
  readonly dir: string;
  readonly caFile: string;
  private readonly config: string;

  constructor() {
    this.dir = mkdtempSync(path.join(tmpdir(), 'moat-crl-ca-'));
    mkdirSync(path.join(this.dir, 'issued'));
    writeFileSync(path.join(this.dir, 'index.txt'), '');
    writeFileSync(path.join(this.dir, 'serial'), '1000\n');
    writeFileSync(path.join(this.dir, 'crlnumber'), '1000\n');
    this.config = path.join(this.dir, 'openssl.cnf');
    writeFileSync(this.config, [
      '[ ca ]', 'default_ca = moat_test_ca', '',
      '[ moat_test_ca ]',
      `dir = ${this.dir}`,
      'database = $dir/index.txt', 'new_certs_dir = $dir/issued', 'serial = $dir/serial', 'crlnumber = $dir/crlnumber',
      'certificate = $dir/ca.crt', 'private_key = $dir/ca.key',
      'default_md = sha256', 'default_days = 2', 'default_crl_days = 2',
      'policy = any_name', 'unique_subject = no', 'x509_extensions = client', '',
      '[ any_name ]', 'commonName = supplied', '',
      '[ client ]', 'basicConstraints = CA:FALSE', 'extendedKeyUsage = clientAuth', '',
    ].join('\n'));
    this.openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=Moat test client CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-keyout', 'ca.key', '-out', 'ca.crt']);
    this.caFile = path.join(this.dir, 'ca.crt');
  }

  /** A client certificate with this common name: its certificate and key files. */
  issue(name: string): { certFile: string; keyFile: string } {
    this.openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`]);
    this.openssl(['ca', '-batch', '-config', this.config, '-notext', '-in', `${name}.csr`, '-out', `${name}.crt`]);
    this.readable();
    return { certFile: path.join(this.dir, `${name}.crt`), keyFile: path.join(this.dir, `${name}.key`) };
  }

  revoke(name: string): void {
    this.openssl(['ca', '-batch', '-config', this.config, '-revoke', `${name}.crt`]);
  }

  /**
   * Writes the CRL to `file` (written beside it, then renamed over it, as an operator would). `nextUpdate`:
   * YYYYMMDDHHMMSSZ, for a CRL that is out of date.
   */
  writeCrl(file: string, dates?: { lastUpdate: string; nextUpdate: string }): void {
    const fresh = `${file}.new`;
    this.openssl(['ca', '-batch', '-config', this.config, '-gencrl', '-out', fresh,
      ...(dates ? ['-crl_lastupdate', dates.lastUpdate, '-crl_nextupdate', dates.nextUpdate] : [])]);
    chmodSync(fresh, 0o644);
    renameSync(fresh, file);
  }

  private openssl(args: string[]): void {
    execFileSync('openssl', args, { cwd: this.dir, stdio: 'pipe' });
  }

  /** Readable by all, like the test PKI (a broker run as another user reads them). */
  private readable(): void {
    chmodSync(this.dir, 0o755);
    for (const name of readdirSync(this.dir)) if (name !== 'issued') chmodSync(path.join(this.dir, name), 0o644);
  }
}
