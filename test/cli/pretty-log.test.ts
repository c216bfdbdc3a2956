import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, describe, it } from 'node:test';
import { connectClient, waitFor } from '../helpers/broker.js';
import { freePort, killAll, spawnProc } from '../helpers/process.js';

/** `log.format: pretty` (and `auto` on a terminal): one line per event, its fields as key=value on that line. */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MOAT = path.join(ROOT, 'dist', 'src', 'cli', 'moat.js');

/** "[2026-01-02 03:04:05.678 +0000] INFO: message key=value ..." */
const LINE = /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [+-]\d{4}\] (TRACE|DEBUG|INFO|WARN|ERROR|FATAL): \S/;

function writeConfig(dir: string, port: number, format: string): string {
  const file = path.join(dir, `moat-${format}-${port}.yaml`);
  writeFileSync(file, `listeners:\n  - port: ${port}\n    host: 127.0.0.1\nstore:\n  type: memory\nsys_interval: 0\nlog:\n  format: ${format}\n`);
  return file;
}

/** The output's lines, without a terminal's colours, carriage returns and echoed Ctrl-C. */
function linesOf(out: string): string[] {
  return out.replace(/\u001b\[[0-9;]*m/g, '').replace(/\r/g, '').replace(/^\^C/gm, '').split('\n').filter((l) => l !== '');
}

/** Every line is an event of its own, and the events we caused carry their fields. */
function assertOneLinePerEvent(out: string, port: number, clientId: string): void {
  const lines = linesOf(out);
  for (const line of lines) assert.match(line, LINE, `each line is a whole event: ${JSON.stringify(line)}\n${out}`);
  const find = (what: RegExp): string => {
    const found = lines.filter((l) => what.test(l));
    assert.equal(found.length, 1, `one line matching ${what}:\n${out}`);
    return found[0]!;
  };
  const listening = find(/INFO: listening /);
  assert.ok(listening.includes(` listener=127.0.0.1:${port}`), listening);
  assert.ok(listening.includes(` port=${port}`), listening);
  assert.ok(listening.includes(' host=127.0.0.1'), listening);
  assert.ok(!listening.includes('pid='), 'the pid is left out');
  assert.ok(find(/INFO: client connected /).includes(` clientId=${clientId} `));
  // A string with a space is quoted, so the line still splits into key=value pairs.
  const gone = find(/INFO: client disconnected /);
  assert.ok(gone.includes(` clientId=${clientId}`), gone);
  assert.ok(gone.includes(' reason="client disconnected"'), gone);
}

describe('pretty log format of the moat command', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'moat-pretty-'));
  afterEach(() => killAll());
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('log.format: pretty prints each event on one line: time, level, message, then key=value fields', async () => {
    const port = await freePort();
    const moat = spawnProc(process.execPath, [MOAT, '-c', writeConfig(dir, port, 'pretty')], { cwd: dir, limitMs: 30_000 });
    await moat.waitStdout((out) => / INFO: listening /.test(out), 10_000, 'listening');
    const client = await connectClient(`mqtt://127.0.0.1:${port}`, { clientId: 'pretty-1' });
    await moat.waitStdout((out) => out.includes('client connected'), 5000, 'the connect line');
    await client.endAsync();
    await moat.waitStdout((out) => out.includes('client disconnected'), 5000, 'the disconnect line');
    assertOneLinePerEvent(moat.stdout, port, 'pretty-1');
  });

  it('log.format: auto on a terminal is the same one-line format', async () => {
    const port = await freePort();
    const config = writeConfig(dir, port, 'auto');
    // `script` gives moat a pseudo-terminal as its standard output; Ctrl-C typed there stops it.
    const child = spawn('script', ['-qec', `exec ${process.execPath} ${MOAT} -c ${config}`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], cwd: dir });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    let moatPid: number | undefined;
    try {
      // moat's own pid (script's child), so that it is stopped even when the test fails before Ctrl-C.
      const children = (): string => readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim();
      await waitFor(() => children() !== '', 5000, 'moat under script');
      moatPid = Number(children().split(' ')[0]);
      await waitFor(() => linesOf(out).some((l) => / INFO: listening /.test(l)), 10_000, 'listening');
      const client = await connectClient(`mqtt://127.0.0.1:${port}`, { clientId: 'pretty-tty' });
      await waitFor(() => out.includes('client connected'), 5000, 'the connect line');
      await client.endAsync();
      await waitFor(() => out.includes('client disconnected'), 5000, 'the disconnect line');
      assert.ok(out.includes('\u001b['), 'coloured on a terminal');
      assertOneLinePerEvent(out, port, 'pretty-tty');
      child.stdin.write('\u0003');
      assert.equal(await Promise.race([exited, new Promise((resolve) => setTimeout(() => resolve('timeout'), 10_000))]), 0, out);
      for (const line of linesOf(out)) assert.match(line, LINE, 'the shutdown lines too');
      assert.ok(linesOf(out).some((l) => l.endsWith(' INFO: shutting down signal=SIGINT')), out);
    } finally {
      child.kill('SIGKILL');
      if (moatPid) {
        try {
          process.kill(moatPid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  });
});
