#!/usr/bin/env node
// `npm test` runs this first: the tests talk to real programs (mosquitto clients, redis-server, openssl...).
// What is missing is installed with apt-get when this runs as root on Debian or Ubuntu (a fresh machine, CI);
// anywhere else the run stops and says what to install.
// MOAT_PREREQUISITES=check: never install, only report (exit 1 if something is missing).
import { spawnSync } from 'node:child_process';
import { accessSync, constants, realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Each command the tests and the benchmark harness run, and the Debian package that brings it. An entry with a
 * `check` is present when the check says so, not when its command is on PATH.
 */
export const PREREQUISITES = [
  { command: 'mosquitto_pub', pkg: 'mosquitto-clients', why: 'interoperability tests' },
  { command: 'mosquitto_sub', pkg: 'mosquitto-clients', why: 'interoperability tests' },
  { command: 'mosquitto_passwd', pkg: 'mosquitto', why: 'Mosquitto password files' },
  { command: 'mosquitto', pkg: 'mosquitto', why: 'moat convert, side by side with Mosquitto' },
  { command: 'mosquitto_ctrl', pkg: 'mosquitto', why: "Mosquitto's dynamic-security API (mosquitto_ctrl dynsec)" },
  { command: 'redis-server', pkg: 'redis-server', why: 'the Redis store' },
  { command: 'redis-cli', pkg: 'redis-tools', why: 'creating a Redis Cluster (cluster mode on a Redis Cluster)' },
  { command: 'openssl', pkg: 'openssl', why: 'TLS test certificates' },
  { command: 'cc', pkg: 'gcc', why: "the benchmark's latency probe (harness smoke test)" },
  { command: 'script', pkg: 'bsdutils', why: 'moat passwd on a terminal' },
  { command: 'unshare', pkg: 'util-linux', why: 'full-disk tests' },
  { command: 'taskset', pkg: 'util-linux', why: 'benchmark harness' },
  { command: 'prlimit', pkg: 'util-linux', why: 'benchmark harness' },
  { command: 'stdbuf', pkg: 'coreutils', why: 'line-buffered output of mosquitto_sub (TLS-PSK tests)' },
  { command: 'chromium', pkg: 'chromium', why: 'MQTT over WebSockets from a browser, and the dashboard (driven by playwright-core)' },
  { command: 'firefox-esr', pkg: 'firefox-esr', why: 'the dashboard in Firefox (driven by puppeteer-core over WebDriver BiDi)' },
  // A Python module is no command on PATH: the entry says how to check for it instead.
  {
    command: 'python3',
    pkg: 'python3-cryptography',
    why: "Python's cryptography module for /usr/bin/python3: payload envelopes checked against an independent implementation",
    check: () => pythonImports('/usr/bin/python3', 'cryptography'),
  },
];

function pythonImports(python, module) {
  return spawnSync(python, ['-c', `import ${module}`], { stdio: 'ignore' }).status === 0;
}

function onPath(command, searchPath = process.env.PATH ?? '') {
  return searchPath.split(path.delimiter).some((dir) => {
    try {
      accessSync(path.join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export function missingPackages(searchPath) {
  const missing = PREREQUISITES.filter((p) => !(p.check ? p.check() : onPath(p.command, searchPath)));
  return { missing, packages: [...new Set(missing.map((p) => p.pkg))] };
}

function main() {
  const { missing, packages } = missingPackages();
  if (packages.length === 0) return 0;
  const list = missing.map((p) => `${p.command} (${p.why})`).join(', ');
  const canInstall = process.env.MOAT_PREREQUISITES !== 'check' && process.getuid?.() === 0 && onPath('apt-get');
  if (!canInstall) {
    process.stderr.write(`The tests need: ${list}.\nInstall them (Debian/Ubuntu): apt-get install ${packages.join(' ')}\n`);
    return 1;
  }
  process.stdout.write(`Installing what the tests need: ${packages.join(' ')}\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update'], ['install', '-y', '--no-install-recommends', ...packages]]) {
    const result = spawnSync('apt-get', args, { stdio: 'inherit', env });
    if (result.status !== 0) {
      process.stderr.write(`apt-get ${args[0]} failed (status ${result.status}); the tests need: ${list}\n`);
      return 1;
    }
  }
  const still = missingPackages().missing;
  if (still.length > 0) {
    process.stderr.write(`still missing after apt-get: ${still.map((p) => p.command).join(', ')}\n`);
    return 1;
  }
  return 0;
}

// Run as a script (not imported by the test that checks the list): compared as real paths, so a checkout under
// a path with spaces or a symbolic link still runs the check.
if (process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))) process.exit(main());
