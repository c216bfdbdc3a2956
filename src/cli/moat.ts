#!/usr/bin/env -S node --max-semi-space-size=8
// The young generation's semi-space is 8 MiB instead of V8's 16: a broker holding thousands of idle
// connections keeps about 1 KiB less per connection, for about 0.3 µs more per QoS 0 fan-in delivery
// (docs/benchmarks.md, idle connections). `npm start` and the benchmarks run with the same flags.

// Each subcommand loads only its own modules: `moat ctl` in a script loop must not pay for loading the broker.
const [subcommand, ...rest] = process.argv.slice(2);
if (subcommand === 'passwd') {
  process.exitCode = await (await import('./passwd.js')).runPasswd(rest);
} else if (subcommand === 'convert') {
  process.exitCode = await (await import('./convert.js')).runConvert(rest);
} else if (subcommand === 'store') {
  process.exitCode = await (await import('./store.js')).runStore(rest);
} else if (subcommand === 'ctl') {
  process.exitCode = await (await import('./ctl/index.js')).runCtl(rest);
} else {
  await (await import('./serve.js')).serve();
}
