import net from 'node:net';

/**
 * The unit an address is judged by: an IPv4 address as it is, an IPv6 address by its /64 (one customer's
 * network hands out a whole /64, so counting single IPv6 addresses would count nothing). IPv4-mapped IPv6
 * addresses (`::ffff:192.0.2.1`, as a dual-stack listener reports them) are their IPv4 address.
 */
export function addressKey(address: string): string {
  address = unmapped(address);
  if (net.isIPv4(address)) return address;
  if (!net.isIPv6(address)) return address;
  return `${expandIPv6(address).slice(0, 4).join(':')}::/64`;
}

/** `::ffff:192.0.2.1` (an IPv4 client on a dual-stack listener) as `192.0.2.1`; any other address as it is. */
function unmapped(address: string): string {
  return /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1] ?? address;
}

/** The eight hextets of an IPv6 address, without leading zeros ("2001:db8::1" → 2001, db8, 0, 0, 0, 0, 0, 1). */
function expandIPv6(address: string): string[] {
  const withoutZone = address.split('%')[0]!;
  const [head, tail] = withoutZone.split('::') as [string, string | undefined];
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const missing = 8 - left.length - right.length;
  const hextets = tail === undefined ? left : [...left, ...Array<string>(missing).fill('0'), ...right];
  return hextets.map((h) => (h.includes('.') ? h : parseInt(h, 16).toString(16)));
}

/** A set of addresses and networks ("192.0.2.7", "10.0.0.0/8", "2001:db8::/32"), matched with node:net's BlockList. */
export class AddressSet {
  private list = new net.BlockList();
  private readonly entries = new Set<string>();

  constructor(entries: Iterable<string> = []) {
    for (const entry of entries) this.add(entry);
  }

  /** Throws a TypeError naming the entry if it is neither an address nor a network. */
  add(entry: string): void {
    addTo(this.list, entry);
    this.entries.add(entry);
  }

  delete(entry: string): void {
    if (!this.entries.delete(entry)) return;
    this.list = new net.BlockList();
    for (const e of this.entries) addTo(this.list, e);
  }

  has(address: string): boolean {
    if (this.entries.size === 0) return false;
    const plain = unmapped(address);
    const family = net.isIPv4(plain) ? 'ipv4' : net.isIPv6(plain) ? 'ipv6' : undefined;
    return family !== undefined && this.list.check(plain, family);
  }

  get size(): number {
    return this.entries.size;
  }
}

function addTo(list: net.BlockList, entry: string): void {
  const [address, prefix] = entry.split('/') as [string, string | undefined];
  const family = net.isIPv4(address) ? 'ipv4' : net.isIPv6(address) ? 'ipv6' : undefined;
  if (!family) throw new TypeError(`"${entry}" is not an IP address or network (CIDR)`);
  if (prefix === undefined) return list.addAddress(address, family);
  const bits = Number(prefix);
  if (!Number.isInteger(bits) || bits < 0 || bits > (family === 'ipv4' ? 32 : 128)) throw new TypeError(`"${entry}": the prefix length must be 0-${family === 'ipv4' ? 32 : 128}`);
  list.addSubnet(address, bits, family);
}

/** True for an address or a network in CIDR notation. */
export function isAddressOrNetwork(entry: string): boolean {
  try {
    addTo(new net.BlockList(), entry);
    return true;
  } catch {
    return false;
  }
}
