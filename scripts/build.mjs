#!/usr/bin/env node
// Builds the TypeScript only when a source changed since the last build (npm start, npm test and npm run
// bench all call it), and removes outputs whose source is gone, so a deleted test never runs from dist.
// Static assets (the admin dashboard's HTML, CSS and JavaScript) are copied beside the compiled code.
// Usage: node scripts/build.mjs [project directory, default: this script's parent]
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Folders of static files copied as they are into the same place under the output folder. */
const ASSET_FOLDERS = ['src/admin/dashboard/assets'];

const root = path.resolve(process.argv[2] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..'));
const tsconfig = JSON.parse(readFileSync(path.join(root, 'tsconfig.json'), 'utf8'));
const outDir = path.join(root, tsconfig.compilerOptions.outDir);
const stampFile = path.join(outDir, '.build-stamp.json');

/** The folders named by tsconfig's `include` patterns (`folder/**\/*.ts`). */
function sourceFolders() {
  return tsconfig.include.map((pattern) => {
    const match = /^([^*]+)\/\*\*\/\*\.ts$/.exec(pattern);
    if (!match) throw new Error(`scripts/build.mjs understands include patterns of the form "folder/**/*.ts", not "${pattern}"`);
    return match[1];
  });
}

function listTs(folder, into) {
  let entries;
  try {
    entries = readdirSync(folder, { withFileTypes: true });
  } catch {
    return into;
  }
  for (const entry of entries) {
    const full = path.join(folder, entry.name);
    if (entry.isDirectory()) listTs(full, into);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) into.push(full);
  }
  return into;
}

/** Each input as path, modification time and size: a file swapped for an older one (cp -p, tar) counts as changed too. */
function signature(files) {
  return files.map((file) => {
    const stat = statSync(file);
    return `${path.relative(root, file)}:${stat.mtimeMs}:${stat.size}`;
  });
}

function readStamp() {
  try {
    return JSON.parse(readFileSync(stampFile, 'utf8'));
  } catch {
    return undefined;
  }
}

const sources = sourceFolders().flatMap((folder) => listTs(path.join(root, folder), [])).sort();
const inputs = [...sources, path.join(root, 'tsconfig.json'), path.join(root, 'package.json')];
const relative = sources.map((file) => path.relative(root, file));
const inputsNow = signature(inputs); // taken before compiling: a file saved during the build is built next time
const stamp = readStamp();
const upToDate = stamp !== undefined && JSON.stringify(stamp.inputs) === JSON.stringify(inputsNow);

if (!upToDate) {
  const tsc = createRequire(path.join(root, 'package.json')).resolve('typescript/bin/tsc');
  const result = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit', cwd: root });
  if (result.status !== 0) process.exit(result.status ?? 1);
  pruneOrphans(new Set(relative.map((file) => file.slice(0, -'.ts'.length))));
  writeFileSync(stampFile, JSON.stringify({ inputs: inputsNow }));
  if (process.env.MOAT_BUILD_VERBOSE) process.stdout.write(`built ${sources.length} sources\n`);
} else if (process.env.MOAT_BUILD_VERBOSE) {
  process.stdout.write('up to date\n');
}
syncAssets(); // cheap (a few small files compared by size and time), so done on every run

/** Makes each output asset folder a copy of its source: changed files copied, files gone from the source removed. */
function syncAssets() {
  for (const folder of ASSET_FOLDERS) syncFolder(path.join(root, folder), path.join(outDir, folder));
}

function syncFolder(from, to) {
  const wanted = new Set();
  if (existsSync(from)) {
    mkdirSync(to, { recursive: true });
    for (const entry of readdirSync(from, { withFileTypes: true })) {
      wanted.add(entry.name);
      const source = path.join(from, entry.name);
      const target = path.join(to, entry.name);
      if (entry.isDirectory()) {
        syncFolder(source, target);
        continue;
      }
      const made = existsSync(target) ? statSync(target) : undefined;
      const stat = statSync(source);
      if (!made || made.size !== stat.size || made.mtimeMs < stat.mtimeMs) copyFileSync(source, target);
    }
  }
  if (!existsSync(to)) return;
  for (const entry of readdirSync(to)) if (!wanted.has(entry)) rmSync(path.join(to, entry), { recursive: true, force: true });
}

/** Outputs (`x.js`, `x.js.map`, `x.d.ts`, `x.d.ts.map`) whose `x.ts` no longer exists. */
function pruneOrphans(stems) {
  const outputs = /\.(js|js\.map|d\.ts|d\.ts\.map)$/;
  const assetOutputs = new Set(ASSET_FOLDERS.map((folder) => path.join(outDir, folder)));
  const walk = (folder) => {
    if (!existsSync(folder)) return;
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      const full = path.join(folder, entry.name);
      if (entry.isDirectory()) {
        if (!assetOutputs.has(full)) walk(full); // copied assets are not compiled outputs
        continue;
      }
      const match = outputs.exec(entry.name);
      if (!match) continue;
      const stem = path.relative(outDir, full).slice(0, -match[0].length);
      if (!stems.has(stem)) rmSync(full);
    }
  };
  walk(outDir);
}
