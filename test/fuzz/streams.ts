/**
 * Connection scripts: what one fuzz connection sends (its bytes, cut into writes, with pauses between
 * them) and what the broker must do with it. A script is a pure function of its PRNG.
 *
 * The verdict "the broker must close this connection" comes from two sources, kept apart:
 * - the mutation itself, when it breaks a rule whatever the codec thinks (ill-formed UTF-8, reserved
 *   type, bad flags, a Variable Byte Integer of 5 bytes, an unknown property…) and no earlier packet was
 *   mutated (an earlier mutation may shift the framing);
 * - a reference reading of the stream, write by write, with the project's decoder and the rules of the
 *   session (first packet CONNECT, one CONNECT only, no packet only a server sends, DISCONNECT ends it).
 * Each gives the write after which the broker has every byte it needs to decide; the earlier one counts.
 */
import { PacketDecoder, PacketType, PACKET_TYPE_NAMES, type ConnectPacket, type Packet } from '../../src/protocol/index.js';
import { withClientId, withCredentials, type Corpus, type CorpusEntry, type Version } from './corpus.js';
import { mutate } from './mutators.js';
import { Prng } from './prng.js';

export type Kind =
  | 'valid' | 'mutated' | 'mutated-connect' | 'no-connect' | 'connect-then-garbage' | 'garbage' | 'cross-version'
  | 'incomplete-connect' | 'trickle';

const KINDS: ReadonlyArray<readonly [number, Kind]> = [
  [10, 'valid'], [48, 'mutated'], [8, 'mutated-connect'], [5, 'no-connect'], [8, 'connect-then-garbage'], [4, 'garbage'],
  [6, 'cross-version'], [6, 'incomplete-connect'], [3, 'trickle'],
];

export interface Script {
  index: number;
  kind: Kind;
  version: Version;
  /** The writes, in order. */
  chunks: Buffer[];
  /** Before each write: -1 none (same turn), 0 setImmediate, n > 0 a timer of n ms. */
  gaps: number[];
  /** Packets sent (corpus packets, mutated or not, and each blob of random bytes). */
  packets: number;
  /** What was done to the packets, for the report of a failure. */
  notes: string[];
  /** The broker must close the connection once write `afterChunk` is out, because of `reason`. */
  mustClose?: { afterChunk: number; reason: string; source: 'mutation' | 'reference decoder' };
  /** The stream ends inside CONNECT and the script waits for the broker's CONNECT timeout. */
  awaitConnectTimeout: boolean;
  /** How the client ends the connection when the broker does not: FIN or reset, after `lingerMs`. */
  ending: 'end' | 'destroy';
  lingerMs: number;
  /** The CONNECT the broker will have read (reference decoder), when there is one. */
  connect?: ConnectPacket;
  /** Authenticated runs: the source address of the connection (anonymous runs: the default, 127.0.0.1). */
  localAddress?: string;
}

/**
 * An authenticated run (docs/fuzzing.md): the broker has a password file and the guard. Fuzz clients connect
 * from loopback addresses other than 127.0.0.1 (which the guard allow-lists, and the canary uses): most from
 * a crowd of 4,064 addresses (127.1.0-15.1-254) that rarely reach a ban, some from four "attacker" addresses
 * (127.0.0.2-5) that are banned and then closed at accept. Their CONNECTs carry a user's right password, a
 * wrong password for a user they can only guess at, an unknown user name, or the corpus's own credentials.
 */
export interface AuthPlan {
  /** Users whose password fuzz clients know. */
  users: ReadonlyArray<{ username: string; password: string }>;
  /** Users in the file whose password fuzz clients only guess at. */
  victims: readonly string[];
}

/** Credentials and address of one script, from a generator of its own (so an anonymous run's scripts stay as they were). */
function authChoice(plan: AuthPlan, rng: Prng): { localAddress: string; credentials?: { username: string; password: Buffer }; note: string } {
  const attacker = rng.chance(0.15);
  const localAddress = attacker ? `127.0.0.${2 + rng.int(4)}` : `127.1.${rng.int(16)}.${1 + rng.int(254)}`;
  const kind = rng.weighted(attacker
    ? [[1, 'right'], [6, 'wrong'], [3, 'unknown']] as const
    : [[55, 'right'], [15, 'wrong'], [10, 'unknown'], [20, 'corpus']] as const);
  const from = `from ${localAddress}${attacker ? ' (attacker)' : ''}`;
  if (kind === 'right') {
    const user = rng.pick(plan.users);
    return { localAddress, credentials: { username: user.username, password: Buffer.from(user.password) }, note: `${from} as ${user.username}, right password` };
  }
  if (kind === 'wrong') {
    const username = rng.pick(plan.victims);
    return { localAddress, credentials: { username, password: Buffer.from(`guess-${rng.u32().toString(36)}`) }, note: `${from} as ${username}, wrong password` };
  }
  if (kind === 'unknown') {
    const username = `ghost-${rng.int(1000)}`;
    return { localAddress, credentials: { username, password: rng.bytes(rng.range(1, 24)) }, note: `${from} as unknown ${username}` };
  }
  return { localAddress, note: `${from} with the corpus's credentials` };
}

export interface ScriptOptions {
  /** Maximum packet size configured in the broker (the reference decoder uses the same). */
  maxPacketSize: number;
  /** Tag used in generated Client Identifiers (unique per run). */
  tag: string;
  /** An authenticated run: credentials and source addresses for the scripts. */
  auth?: AuthPlan;
}

interface Piece {
  bytes: Buffer;
  /** This piece must make the broker close (a rule broken whatever the framing before it). */
  mustClose?: string;
  note?: string;
}

function packetsAfterConnect(rng: Prng): number {
  // Mostly short conversations, sometimes long ones: mean about 16.
  return rng.chance(0.15) ? rng.range(20, 80) : rng.range(0, 16);
}

function pickPacket(corpus: Corpus, version: Version, rng: Prng): CorpusEntry {
  return rng.chance(0.06) ? rng.pick(corpus.packets[version]) : rng.pick(corpus.clientPackets[version]);
}

function connectFor(corpus: Corpus, version: Version, rng: Prng, tag: string, index: number): CorpusEntry {
  const entry = rng.pick(corpus.connects[version]);
  // Mostly a Client Identifier of our own (no takeovers between scripts); sometimes the corpus one
  // (often short or empty: takeovers and assigned identifiers happen too).
  if (rng.chance(0.7)) return withClientId(entry, `fz-${tag}-${index}`);
  return entry;
}

export function buildScript(index: number, corpus: Corpus, rng: Prng, options: ScriptOptions): Script {
  const kind = rng.weighted(KINDS);
  const version = rng.pick([3, 4, 5] as const);
  const pieces: Piece[] = [];
  const notes: string[] = [kind, `v${version}`];
  let awaitConnectTimeout = false;
  let mutatedBefore = false;
  const add = (entry: CorpusEntry, mutationRate: number): void => {
    if (rng.chance(mutationRate)) {
      const m = mutate(entry, rng);
      const piece: Piece = { bytes: m.bytes, note: `#${pieces.length}: ${m.name}` };
      if (m.mustClose && !mutatedBefore) piece.mustClose = m.mustClose;
      mutatedBefore = true;
      pieces.push(piece);
    } else {
      pieces.push({ bytes: entry.bytes });
    }
  };
  let connect = connectFor(corpus, version, rng, options.tag, index);
  let localAddress: string | undefined;
  if (options.auth) {
    const choice = authChoice(options.auth, new Prng((rng.seed ^ 0x5ec0_a17d) >>> 0));
    localAddress = choice.localAddress;
    if (choice.credentials) connect = withCredentials(connect, choice.credentials.username, choice.credentials.password);
    notes.push(choice.note);
  }
  switch (kind) {
    case 'valid':
    case 'trickle': {
      pieces.push({ bytes: connect.bytes });
      const n = kind === 'trickle' ? rng.range(0, 3) : packetsAfterConnect(rng);
      for (let i = 0; i < n; i++) pieces.push({ bytes: rng.pick(corpus.clientPackets[version]).bytes });
      break;
    }
    case 'mutated': {
      pieces.push({ bytes: connect.bytes });
      const n = Math.max(1, packetsAfterConnect(rng));
      const forced = rng.int(n);
      for (let i = 0; i < n; i++) add(pickPacket(corpus, version, rng), i === forced ? 1 : 0.08);
      break;
    }
    case 'mutated-connect': {
      add(connect, 1);
      const n = packetsAfterConnect(rng);
      for (let i = 0; i < n; i++) add(pickPacket(corpus, version, rng), 0.05);
      break;
    }
    case 'no-connect': {
      const n = Math.max(1, packetsAfterConnect(rng));
      for (let i = 0; i < n; i++) pieces.push({ bytes: pickPacket(corpus, version, rng).bytes });
      break;
    }
    case 'connect-then-garbage': {
      pieces.push({ bytes: connect.bytes });
      for (let i = 0, n = rng.range(1, 4); i < n; i++) pieces.push({ bytes: rng.bytes(rng.range(1, 300)), note: 'random bytes' });
      break;
    }
    case 'garbage': {
      for (let i = 0, n = rng.range(1, 4); i < n; i++) {
        const blob = rng.bytes(rng.range(1, 300));
        if (i === 0 && rng.chance(0.5)) blob[0] = 0x10; // looks like a CONNECT
        pieces.push({ bytes: blob, note: 'random bytes' });
      }
      break;
    }
    case 'cross-version': {
      pieces.push({ bytes: connect.bytes });
      const other = rng.pick(([3, 4, 5] as const).filter((v) => v !== version));
      notes.push(`packets of v${other}`);
      for (let i = 0, n = Math.max(1, packetsAfterConnect(rng)); i < n; i++) pieces.push({ bytes: pickPacket(corpus, other, rng).bytes });
      break;
    }
    case 'incomplete-connect': {
      const cut = rng.range(1, connect.bytes.length - 1);
      pieces.push({ bytes: connect.bytes.subarray(0, cut), note: `CONNECT cut at ${cut} of ${connect.bytes.length}` });
      // Waiting for the CONNECT timeout holds a connection slot for seconds: only some scripts do.
      awaitConnectTimeout = rng.chance(0.2);
      break;
    }
  }
  for (const p of pieces) if (p.note) notes.push(p.note);

  // Cut the stream into writes.
  const stream = Buffer.concat(pieces.map((p) => p.bytes));
  const pieceEnds: number[] = [];
  let offset = 0;
  for (const p of pieces) pieceEnds.push((offset += p.bytes.length));
  const mode = kind === 'trickle' ? 'bytes' : rng.weighted([[3, 'one'], [3, 'packet'], [4, 'random'], [1, 'bytes']] as const);
  const cuts = new Set<number>();
  if (mode === 'packet') pieceEnds.forEach((e) => cuts.add(e));
  else if (mode === 'random') for (let i = 0, n = rng.range(1, 8); i < n; i++) cuts.add(rng.int(stream.length + 1));
  else if (mode === 'bytes' && stream.length <= 400) for (let i = 1; i < stream.length; i += rng.range(1, 3)) cuts.add(i);
  cuts.add(stream.length);
  cuts.delete(0);
  const ends = [...cuts].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  const gaps: number[] = [];
  let prev = 0;
  for (const end of ends) {
    chunks.push(stream.subarray(prev, end));
    prev = end;
    gaps.push(kind === 'trickle' ? rng.range(1, 20) : rng.weighted([[6, -1], [3, 0], [1, rng.range(1, 10)]]));
  }
  notes.push(`${chunks.length} writes (${mode})`);

  const script: Script = {
    index, kind, version, chunks, gaps, packets: pieces.length, notes, awaitConnectTimeout,
    ending: rng.chance(0.5) ? 'end' : 'destroy',
    lingerMs: rng.chance(0.7) ? 0 : rng.range(1, 40),
  };
  if (localAddress !== undefined) script.localAddress = localAddress;
  // Verdict from the mutations: the first piece that must close, at the write that completes it.
  pieces.forEach((p, i) => {
    if (p.mustClose && !script.mustClose) {
      script.mustClose = { afterChunk: chunkOf(ends, pieceEnds[i]!), reason: p.mustClose, source: 'mutation' };
    }
  });
  referenceVerdict(script, options.maxPacketSize);
  return script;
}

/** Index of the write that contains the byte just before `offset`. */
function chunkOf(ends: readonly number[], offset: number): number {
  for (let i = 0; i < ends.length; i++) if (ends[i]! >= offset) return i;
  return ends.length - 1;
}

const SERVER_ONLY: ReadonlySet<number> = new Set([PacketType.CONNACK, PacketType.SUBACK, PacketType.UNSUBACK, PacketType.PINGRESP]);

/** Reads the script's writes as the broker will, and records the first write after which it must close. */
function referenceVerdict(script: Script, maxPacketSize: number): void {
  const decoder = new PacketDecoder(maxPacketSize);
  let packets = 0;
  let verdict: string | undefined;
  const onPacket = (p: Packet): boolean => {
    packets++;
    if (packets === 1) {
      if (p.type !== PacketType.CONNECT) verdict = `first packet is ${PACKET_TYPE_NAMES[p.type]}, not CONNECT [MQTT-3.1.0-1]`;
      else script.connect = p;
    } else if (p.type === PacketType.CONNECT) verdict = 'second CONNECT [MQTT-3.1.0-2]';
    else if (SERVER_ONLY.has(p.type)) verdict = `client sent ${PACKET_TYPE_NAMES[p.type]}`;
    else if (p.type === PacketType.DISCONNECT) verdict = 'DISCONNECT [MQTT-3.14.4-1]';
    return verdict === undefined;
  };
  for (let i = 0; i < script.chunks.length; i++) {
    const error = decoder.push(script.chunks[i]!, onPacket);
    if (error && verdict === undefined) verdict = `malformed: ${error.message}`;
    if (verdict !== undefined) {
      if (!script.mustClose || script.mustClose.afterChunk > i) script.mustClose = { afterChunk: i, reason: verdict, source: 'reference decoder' };
      return;
    }
  }
}

/** True when the CONNECT the broker reads asks for a session that outlives the connection. */
export function wantsStoredSession(connect: ConnectPacket): boolean {
  if (connect.protocolVersion === 5) return (connect.properties?.sessionExpiryInterval ?? 0) > 0;
  return !connect.clean;
}
