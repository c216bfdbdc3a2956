import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { run } from '../helpers/process.js';

/** scripts/build.mjs (run by npm start, npm test and npm run bench): compile only when a source changed. */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BUILD = path.join(ROOT, 'scripts', 'build.mjs');

describe('incremental build', () => {
  let project: string;
  const build = (): ReturnType<typeof run> => run(process.execPath, [BUILD, project], { env: { ...process.env, MOAT_BUILD_VERBOSE: '1' }, limitMs: 120_000 });
  const out = (name: string): string => path.join(project, 'dist', 'src', name);

  before(() => {
    // A small project of the same shape as this one, so the test does not rebuild the real dist under other tests.
    project = mkdtempSync(path.join(tmpdir(), 'moat-build-'));
    mkdirSync(path.join(project, 'src'));
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(project, 'node_modules'));
    const tsconfig = JSON.parse(readFileSync(path.join(ROOT, 'tsconfig.json'), 'utf8')) as { compilerOptions: object; include: string[] };
    writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify({ ...tsconfig, include: ['src/**/*.ts'] }));
    writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'scratch', type: 'module' }));
    writeFileSync(path.join(project, 'src', 'a.ts'), "export const a: string = 'a';\n");
    writeFileSync(path.join(project, 'src', 'b.ts'), "export const b: number = 1;\n");
  });
  after(() => rmSync(project, { recursive: true, force: true }));

  it('builds the first time, then does nothing while no source changed', async () => {
    const first = await build();
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /built 2 sources/);
    const before = statSync(out('a.js')).mtimeMs;
    const second = await build();
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, 'up to date\n');
    assert.equal(statSync(out('a.js')).mtimeMs, before, 'outputs untouched');
  });

  it('rebuilds when a source changes', async () => {
    writeFileSync(path.join(project, 'src', 'b.ts'), 'export const b: number = 2;\n');
    const later = new Date(Date.now() + 2000);
    utimesSync(path.join(project, 'src', 'b.ts'), later, later);
    const again = await build();
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /built/);
    assert.match(readFileSync(out('b.js'), 'utf8'), /b = 2/);
  });

  it('rebuilds when a source is replaced by an older copy (cp -p, tar), whose time is before the last build', async () => {
    writeFileSync(path.join(project, 'src', 'b.ts'), 'export const b: number = 333;\n');
    const earlier = new Date(Date.now() - 3_600_000);
    utimesSync(path.join(project, 'src', 'b.ts'), earlier, earlier);
    const again = await build();
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /built/);
    assert.match(readFileSync(out('b.js'), 'utf8'), /b = 333/);
  });

  it('removes the outputs of a deleted source, so a deleted test never runs from dist', async () => {
    unlinkSync(path.join(project, 'src', 'b.ts'));
    const again = await build();
    assert.equal(again.code, 0, again.stderr);
    assert.equal(existsSync(out('b.js')), false);
    assert.equal(existsSync(out('b.d.ts')), false);
    assert.equal(existsSync(out('a.js')), true);
  });

  it('fails with the compiler\'s message on a type error, and builds again on the next run', async () => {
    writeFileSync(path.join(project, 'src', 'a.ts'), "export const a: string = 1;\n");
    const broken = await build();
    assert.notEqual(broken.code, 0);
    assert.match(broken.stdout + broken.stderr, /TS2322/);
    const still = await build();
    assert.notEqual(still.code, 0, 'a failed build is not recorded as up to date');
  });

  it('npm start, npm test and npm run bench all go through it', () => {
    const scripts = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    for (const name of ['start', 'test', 'bench']) assert.match(scripts[name]!, /node scripts\/build\.mjs && node /, name);
    assert.doesNotMatch(JSON.stringify(scripts), /rmSync\('dist'/, 'no script wipes dist before building');
  });
});
