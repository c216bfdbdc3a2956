import { readdirSync, readFileSync } from 'node:fs';
import { convertMosquittoConfig } from '../config/mosquitto.js';

/**
 * `moat convert <mosquitto.conf>`: writes the equivalent Moat YAML to standard
 * output, with a comment for every option that does not map
 * (docs/migrating-from-mosquitto.md).
 */

const USAGE = `usage: moat convert <mosquitto.conf> > moat.yaml

Reads a Mosquitto 2.x configuration file (and the *.conf files of its include_dir)
and writes the equivalent Moat configuration to standard output. Options Moat has
no equivalent for become comments saying why. Relative paths are resolved against
the directory of the Mosquitto file and written as absolute paths.
See docs/migrating-from-mosquitto.md.`;

export async function runConvert(args: string[]): Promise<number> {
  if (args.includes('-h') || args.includes('--help')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (args.length !== 1 || args[0]!.startsWith('-')) {
    process.stderr.write(`moat convert: ${args.length === 0 ? 'no file given' : `unexpected arguments: ${args.join(' ')}`}\n${USAGE}\n`);
    return 1;
  }
  const file = args[0]!;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    process.stderr.write(`moat convert: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n`);
    return 1;
  }
  const yaml = convertMosquittoConfig(file, text, {
    readFile: (f) => readFileSync(f, 'utf8'),
    readDir: (d) => readdirSync(d),
  });
  process.stdout.write(yaml);
  return 0;
}
