/** Reference topic matching and arbitraries for the topic-matching tests. */
import fc from 'fast-check';

/**
 * The MQTT 3.1.1 matching rules written as plainly as possible (section 4.7):
 * levels split on '/', '+' matches exactly one level (possibly empty), '#' as
 * the last level matches the parent level and any number of levels below
 * [MQTT-4.7.1-2], and filters beginning with a wildcard do not match topic
 * names beginning with '$' [MQTT-4.7.2-1]. Case-sensitive.
 */
export function referenceMatch(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

const topicLevel = fc.constantFrom('', 'a', 'b', 'A', '$x', 'a b');
const filterLevel = fc.constantFrom('', 'a', 'b', 'A', '$x', '+', '+', '#');

/** Valid topic names from a small alphabet: non-empty, no wildcards. */
export const smallTopic: fc.Arbitrary<string> = fc
  .array(topicLevel, { minLength: 1, maxLength: 4 })
  .map((levels) => levels.join('/'))
  .filter((t) => t.length > 0);

/** Valid topic filters from a small alphabet: '#' only as the last level. */
export const smallFilter: fc.Arbitrary<string> = fc
  .array(filterLevel, { minLength: 1, maxLength: 4 })
  .map((levels) => {
    const hash = levels.indexOf('#');
    return (hash === -1 ? levels : levels.slice(0, hash + 1)).join('/');
  })
  .filter((f) => f.length > 0);
