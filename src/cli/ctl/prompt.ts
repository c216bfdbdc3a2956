/**
 * Passwords typed at the terminal without echo, or read from standard input for scripts (`--password-stdin`):
 * never from the command line, where `ps` and the shell's history would show them.
 */

/** One line typed at the terminal, not echoed; the prompt goes to stderr so stdout stays clean. */
export function readHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const input = process.stdin;
    // Echo off before the prompt shows: what is typed as soon as it appears must not be echoed.
    input.setRawMode(true);
    process.stderr.write(prompt);
    let typed = '';
    const done = (): void => {
      input.off('data', onData);
      input.setRawMode(false);
      input.pause();
      process.stderr.write('\n');
    };
    const onData = (data: Buffer | string): void => {
      for (const ch of data.toString()) {
        if (ch === '\r' || ch === '\n') {
          done();
          resolve(typed);
          return;
        }
        if (ch === '\u0003' || ch === '\u0004') {
          done();
          reject(new Error('interrupted'));
          return;
        }
        if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
        else typed += ch;
      }
    };
    input.on('data', onData);
    input.resume();
  });
}

/** The first line of standard input (a script's `echo "$PW" | moat ctl users add NAME --password-stdin`). */
export async function readStdinLine(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  const newline = text.search(/\r?\n/);
  return newline === -1 ? text : text.slice(0, newline);
}

export const canPrompt = (): boolean => process.stdin.isTTY === true;
