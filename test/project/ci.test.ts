import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { run } from '../helpers/process.js';

/** The README's two commands: the second installs what the tests need on a fresh machine; .ci/run is that line. */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PREREQUISITES = path.join(ROOT, 'scripts', 'test-prerequisites.mjs');

function readmeCommands(): string[] {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const block = /```sh\n([\s\S]*?)```/.exec(readme)![1]!;
  return block.split('\n').filter((l) => l.trim() !== '').map((l) => l.replace(/\s+#.*$/, '').trim());
}

function sources(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(folder, e.name);
    return e.isDirectory() ? sources(full) : e.name.endsWith('.ts') ? [full] : [];
  });
}

describe('the README commands and CI', () => {
  it('.ci/run runs exactly the README\'s test line', () => {
    const [start, test] = readmeCommands();
    assert.equal(start, 'npm ci && npm start');
    assert.equal(test, 'npm ci && npm test');
    const ci = readFileSync(path.join(ROOT, '.ci', 'run'), 'utf8').split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
    assert.equal(ci.at(-1), test);
    assert.ok(ci.slice(0, -1).every((l) => /^(set -eu|cd .*)$/.test(l)), `nothing else runs: ${ci.join(' | ')}`);
  });

  it('npm test checks the prerequisites before anything else', () => {
    const scripts = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    assert.match(scripts.test!, /^node scripts\/test-prerequisites\.mjs && /);
  });

  it('every program the tests and the benchmark harness start is a listed prerequisite', async () => {
    const { PREREQUISITES: listed } = await import(PREREQUISITES) as { PREREQUISITES: Array<{ command: string }> };
    const commands = new Set(listed.map((p) => p.command));
    const started = new Set<string>();
    const call = /\b(?:spawnProc|spawn|spawnSync|execFileSync|execFile|run)\('([a-z][a-z0-9_-]*)'/g;
    for (const file of [...sources(path.join(ROOT, 'test')), ...sources(path.join(ROOT, 'bench'))]) {
      for (const match of readFileSync(file, 'utf8').matchAll(call)) started.add(match[1]!);
    }
    // npm and npx come with Node.js itself.
    for (const bundled of ['npm', 'npx', 'mkdir']) started.delete(bundled);
    assert.ok(started.has('mosquitto_pub') && started.has('redis-server'), `the scan finds the spawned programs: ${[...started].join(', ')}`);
    const unlisted = [...started].filter((c) => !commands.has(c));
    assert.deepEqual(unlisted, [], 'programs the tests start that npm test would not install');
  });

  it('on a machine without them, it names each missing program and the apt-get line that installs them', async () => {
    // A PATH holding only node: everything else is missing. MOAT_PREREQUISITES=check reports instead of installing.
    const bin = mkdtempSync(path.join(tmpdir(), 'moat-prereq-'));
    try {
      symlinkSync(process.execPath, path.join(bin, 'node'));
      const bare = await run(path.join(bin, 'node'), [PREREQUISITES], { env: { PATH: bin, MOAT_PREREQUISITES: 'check' } });
      assert.equal(bare.code, 1);
      assert.match(bare.stderr, /mosquitto_pub \(interoperability tests\)/);
      assert.match(bare.stderr, /apt-get install mosquitto-clients mosquitto redis-server redis-tools openssl gcc bsdutils util-linux/);
      const here = await run(process.execPath, [PREREQUISITES], { env: { ...process.env, MOAT_PREREQUISITES: 'check' } });
      assert.equal(here.code, 0, `this machine has them all: ${here.stderr}`);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });
});
