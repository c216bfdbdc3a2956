import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { run } from '../helpers/process.js';

/** Docs that a newcomer reads first agree with the code they describe. */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');
const doc = (name: string): string => readFileSync(path.join(ROOT, name), 'utf8');

describe('docs agree with the code', () => {
  it('the README lists every option and subcommand of moat --help, and no other', async () => {
    const help = (await run(process.execPath, [MOAT, '--help'])).stdout;
    const readme = doc('README.md');
    const helpOptions = new Set(help.slice(help.indexOf('Options:'), help.indexOf('moat passwd')).match(/--[a-z]+/g));
    const section = readme.slice(readme.indexOf('## Running the server'), readme.indexOf('## Configuration'));
    const readmeOptions = new Set(section.match(/`-{1,2}[a-z]+(?:, --[a-z]+)?/g)!.flatMap((o) => o.match(/--[a-z]+/g) ?? []));
    for (const option of helpOptions) assert.ok(readmeOptions.has(option), `README leaves out ${option}`);
    for (const option of readmeOptions) assert.ok(helpOptions.has(option), `README lists ${option}, which moat --help does not have`);
    for (const sub of help.match(/moat (passwd|convert)/g)!) assert.ok(section.includes(`\`${sub}`), `README leaves out ${sub}`);
  });

  it('every audit event is documented in docs/security.md, and only those', () => {
    const audit = readFileSync(path.join(ROOT, 'src', 'security', 'audit.ts'), 'utf8');
    const events = new Set(/event: ((?:'[a-z.-]+'\s*\|?\s*)+);/.exec(audit)![1]!.match(/[a-z]+\.[a-z-]+/g));
    const security = doc('docs/security.md');
    for (const event of ['tls.refused', 'connect.accepted', 'connect.refused']) assert.ok(events.has(event), event);
    for (const event of events) {
      if (event.endsWith('.refused') && event !== 'tls.refused') continue; // named as "refused publishes, subscriptions and wills"
      assert.ok(security.includes(event), `docs/security.md does not name ${event}`);
    }
    for (const name of ['docs/configuration.md', 'docs/security.md', 'docs/library.md']) {
      for (const mentioned of doc(name).match(/`([a-z]+\.(?:refused|accepted|anonymous))`/g) ?? []) {
        assert.ok(events.has(mentioned.slice(1, -1)), `${name} names ${mentioned}, which is no audit event`);
      }
    }
  });

  it('no doc promises what the code has since done or cannot do', () => {
    assert.doesNotMatch(doc('docs/configuration.md'), /handshake[^.]*logged at debug/i, 'failed TLS handshakes are audited at warn');
    assert.doesNotMatch(doc('docs/mqtt5.md'), /SCRAM\)? come with/i, 'SCRAM-SHA-256 ships');
    assert.doesNotMatch(doc('README.md'), /from 'moat'/, 'the package is moat-mqtt');
    for (const name of ['README.md', 'docs/library.md', 'docs/configuration.md', 'docs/multicore.md', 'docs/storage.md', 'docs/security.md']) {
      assert.doesNotMatch(doc(name), /from 'moat'|node_modules\/moat\/|npm install moat(?!-mqtt)/, `${name}: the package is moat-mqtt`);
    }
  });
});
