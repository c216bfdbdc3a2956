// A node:test reporter that prints nothing until the run ends, then every failed test again with its file and
// error. npm test runs it after the usual TAP output, so a failure hundreds of tests back still shows in the
// last lines of a CI log (which is often all that is kept).
import path from 'node:path';

export default async function* failuresReporter(source) {
  const failures = [];
  /** Per file, the names of the tests now open at each nesting level, to give a failure its whole title. */
  const openNamesByFile = new Map();
  for await (const event of source) {
    if (event.type !== 'test:start' && event.type !== 'test:fail') continue;
    const { nesting, name, file, details } = event.data;
    const fileKey = file ?? '';
    let openNames = openNamesByFile.get(fileKey);
    if (!openNames) openNamesByFile.set(fileKey, (openNames = []));
    if (event.type === 'test:start') {
      openNames[nesting] = name;
      openNames.length = nesting + 1;
      continue;
    }
    // A suite fails because a test in it did; that test is listed already.
    if (details?.error?.failureType === 'subtestsFailed') continue;
    failures.push({
      title: [...openNames.slice(0, nesting), name].join(' > '),
      file: file ? path.relative(process.cwd(), file) : '(unknown file)',
      error: describe(details?.error),
    });
  }
  if (failures.length === 0) return;
  yield `\n# ${failures.length} failed test${failures.length === 1 ? '' : 's'} (each also shown above, where it ran):\n`;
  for (const failure of failures) {
    yield `# FAILED ${failure.file}: ${failure.title}\n`;
    const ownLines = failure.error.split('\n').filter((line) => !/\(node:|at node:|\(<anonymous>\)|new Promise/.test(line));
    for (const line of ownLines.slice(0, 40)) yield `#   ${line}\n`;
  }
}

/** The error's own message and stack; node:test wraps a test's error in one that says only "test failed". */
function describe(error) {
  if (!error) return '(no error recorded)';
  const cause = error.code === 'ERR_TEST_FAILURE' && error.cause ? error.cause : error;
  if (cause instanceof Error) return cause.stack ?? `${cause.name}: ${cause.message}`;
  return String(cause);
}
