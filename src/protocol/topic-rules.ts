/**
 * Topic name and topic filter syntax (MQTT 3.1.1 section 4.7, 5.0 section 4.7).
 * Each function returns a description of the first violation, or undefined.
 */
export function topicNameError(topic: string): string | undefined {
  if (topic.length === 0) return 'topic name must not be empty [MQTT-4.7.3-1]';
  if (topic.includes('+') || topic.includes('#')) {
    return 'wildcards are not allowed in a topic name [MQTT-3.3.2-2]';
  }
  return undefined;
}

/**
 * Filter syntax. `$share/{group}/{filter}` must be a well-formed shared
 * subscription in MQTT 5; before it, a malformed one is an ordinary filter.
 */
export function topicFilterError(filter: string, version: number = 5): string | undefined {
  if (filter.startsWith(SHARE_PREFIX)) {
    const shared = parseSharedFilter(filter);
    if (!shared && version < 5) return plainFilterError(filter);
    if (!shared) return 'a shared subscription is $share/{ShareName}/{filter} with a non-empty ShareName without "/", "+" or "#" [MQTT-4.8.2-1]';
    return plainFilterError(shared.filter);
  }
  return plainFilterError(filter);
}

const SHARE_PREFIX = '$share/';

/** `$share/{group}/{filter}` split into its parts; undefined if not a well-formed shared subscription. */
export function parseSharedFilter(filter: string): { group: string; filter: string } | undefined {
  if (!filter.startsWith(SHARE_PREFIX)) return undefined;
  const slash = filter.indexOf('/', SHARE_PREFIX.length);
  if (slash === -1) return undefined;
  const group = filter.slice(SHARE_PREFIX.length, slash);
  if (group.length === 0 || group.includes('+') || group.includes('#')) return undefined;
  return { group, filter: filter.slice(slash + 1) };
}

function plainFilterError(filter: string): string | undefined {
  if (filter.length === 0) return 'topic filter must not be empty [MQTT-4.7.3-1]';
  const hash = filter.indexOf('#');
  if (hash !== -1) {
    if (hash !== filter.length - 1) return "'#' must be the last character of a filter [MQTT-4.7.1-2]";
    if (hash > 0 && filter.charCodeAt(hash - 1) !== 0x2f) {
      return "'#' must occupy a whole level [MQTT-4.7.1-2]";
    }
  }
  let plus = filter.indexOf('+');
  while (plus !== -1) {
    const before = plus === 0 ? 0x2f : filter.charCodeAt(plus - 1);
    const after = plus === filter.length - 1 ? 0x2f : filter.charCodeAt(plus + 1);
    if (before !== 0x2f || after !== 0x2f) return "'+' must occupy a whole level [MQTT-4.7.1-3]";
    plus = filter.indexOf('+', plus + 1);
  }
  return undefined;
}

export function isWildcardFilter(filter: string): boolean {
  return filter.includes('+') || filter.includes('#');
}

/** A JavaScript string that cannot be sent as an MQTT UTF-8 string (section 1.5.3). */
export function utf8StringError(s: string): string | undefined {
  if (s.includes('\u0000')) return 'must not contain U+0000 [MQTT-1.5.3-2]';
  if (!s.isWellFormed()) return 'must be well-formed UTF-16 (no lone surrogates) [MQTT-1.5.3-1]';
  if (Buffer.byteLength(s, 'utf8') > 65_535) return 'must not exceed 65535 bytes [MQTT-1.5.3]';
  return undefined;
}
