import type { Duplex } from 'node:stream';
import {
  ConnectReturnCode, ReasonCode, encodeAck, encodeConnack, encodeEmpty, encodePublishHeader, encodeReasoned,
  encodeSuback, encodeUnsuback, PacketDecoder, PacketType, ProtocolError, publishPacketSize,
  type AckType, type ConnackPacket, type ConnectPacket, type Packet, type Properties, type ProtocolVersion, type QoS, type WillMessage,
} from '../protocol/index.js';
import type { AuthExchange } from './enhanced-auth.js';
import type { Broker } from './broker.js';
import { dispatch } from './handlers/index.js';
import { MAX_ALLOWANCE_PAUSE_MS, type CertificateIdentity, type ClientIdentity, type ClientInfo, type PublishAllowance } from './hooks.js';
import { topicByteLength, type Message } from './message.js';
import { coalesce, COALESCE_CHUNK } from './coalesce.js';
import { reasonLabel } from './stats.js';
import type { Session } from './session.js';

/** Properties of a message as sent on: the Message Expiry Interval counts down [MQTT-3.3.2-6]. */
function outgoingProperties(message: Message): Properties | undefined {
  if (message.expiresAt === undefined) return message.properties;
  const remaining = Math.max(0, Math.ceil((message.expiresAt - Date.now()) / 1000));
  return { ...message.properties, messageExpiryInterval: remaining };
}

export interface ListenerInfo {
  readonly name: string;
  readonly allowAnonymous: boolean;
  /** Connections open at once on this listener; more are closed as they arrive (absent: only the broker's limit). */
  readonly maxConnections?: number;
}

export interface PeerInfo {
  remoteAddress: string;
  remotePort: number;
  /** Set by a TLS transport for a verified client certificate. */
  certificate?: CertificateIdentity;
  /** Set by a TLS transport for a client that proved a pre-shared key (TLS-PSK): the identity it used. */
  pskIdentity?: string;
}

/** Bytes a connection reads before it lets the others have the event loop (Node reads a TCP socket 64 KiB at a time). */
const TURN_BYTES = 65_536;

const CONNECTION = Symbol('connection');
type OwnedSocket = Duplex & { [CONNECTION]: Connection };

function onSocketData(this: OwnedSocket, chunk: Buffer): void {
  this[CONNECTION].onData(chunk);
}

function onSocketError(this: OwnedSocket, err: Error): void {
  this[CONNECTION].close(`network error: ${err.message}`, { cause: 'network_error' });
}

function onSocketClose(this: OwnedSocket): void {
  this[CONNECTION].close('socket closed', { cause: 'connection_lost' });
}

function onSocketDrain(this: OwnedSocket): void {
  this[CONNECTION].onDrain();
}

type State = 'awaiting-connect' | 'connecting' | 'connected' | 'closing' | 'closed';

/**
 * One client's network connection: bytes in through the decoder to the packet
 * handlers, packets out through a per-turn write batch. Protocol state of the
 * client lives in its Session; this object dies with the socket.
 */
export class Connection {
  readonly decoder: PacketDecoder;
  state: State = 'awaiting-connect';
  version: ProtocolVersion = 4;
  keepalive = 0;
  session: Session | undefined;
  client: ClientInfo | undefined;
  will: WillMessage | undefined;
  readonly openedAt: number;
  /** Time (the broker's clock, as of the chunk it came in) of the last complete packet received. */
  lastActivity: number;
  closingSince = 0;

  // MQTT 5 state negotiated at CONNECT.
  /** The client's Receive Maximum: QoS 1/2 messages it accepts unacknowledged. */
  clientReceiveMaximum = 65_535;
  /** The client's Maximum Packet Size. */
  clientMaximumPacketSize = Number.POSITIVE_INFINITY;
  /** Topic aliases the broker may set up toward this client, and those it has. */
  outgoingAliasLimit = 0;
  private outgoingAliases: Map<string, number> | undefined;
  /** Topic aliases this client has set up toward the broker. */
  incomingAliases: Map<number, string> | undefined;
  /** Whether reason strings and user properties may be sent on acknowledgements [MQTT-3.1.2-29]. */
  requestProblemInformation = true;
  /** Session Expiry Interval the client asked for in CONNECT (before any cap). */
  requestedSessionExpiry = 0;
  /** QoS 1 publishes from the client whose PUBACK waits for the store (QoS 2 ones are in the session). */
  pendingPubacks = 0;
  /** What this connection carried, for the admin API: PUBLISH packets each way, and every byte. */
  publishesIn = 0;
  publishesOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** Acknowledgements of this client's packets waiting for the store; later ones queue behind them. */
  private acksWaiting = 0;
  /** What authentication said about the client, until CONNACK puts it in `client`. */
  identity: ClientIdentity | undefined;
  /** Enhanced authentication: the method of this connection, a running exchange, and the CONNECT it is for. */
  authMethod: string | undefined;
  authExchange: AuthExchange | undefined;
  pendingConnect: { packet: ConnectPacket; clientId: string; assigned: boolean } | undefined;
  /** Accepted by the listener's anonymous policy, with no authentication vouching for it. */
  anonymous = false;
  /** The client's publishing allowance (rate limits), set once connected; undefined: unlimited and free. */
  allowance: PublishAllowance | undefined;

  /** Packets written this turn, sent together by `flush`. */
  private batch: Buffer[] | undefined;
  private batchBytes = 0;
  private flushScheduled = false;
  private outbox: Buffer[] | undefined;
  private outboxBytes = 0;
  /** Bytes handed to the store's durability barrier and not yet written. */
  private awaitingDurability = 0;
  /** Reading stops while an asynchronous hook decides, while the peer does not take our bytes, and for the rest of a turn after 64 KiB. */
  private waitingForHook = false;
  private waitingForPeer = false;
  private waitingForTurn = false;
  private waitingForPeers = false;
  /** Reading stops while the client is over its publishing allowance, until this timer fires. */
  private waitingForAllowance = false;
  private allowanceTimer: NodeJS.Timeout | undefined;
  /** Bytes read since this connection last let the others have the event loop. */
  private turnBytes = 0;
  /** Made on the first long read: most connections never need it. */
  private endTurn: (() => void) | undefined;
  private readonly onPacket = (packet: Packet, size: number): boolean => this.handlePacket(packet, size);

  constructor(
    readonly broker: Broker,
    readonly socket: Duplex,
    readonly listener: ListenerInfo,
    readonly peer: PeerInfo,
  ) {
    this.openedAt = Date.now();
    this.lastActivity = this.openedAt;
    this.decoder = new PacketDecoder(broker.limits.maxPacketSize);
    // Shared listeners that find the connection on the socket: four closures per connection cost more.
    (socket as OwnedSocket)[CONNECTION] = this;
    socket.on('data', onSocketData);
    socket.on('error', onSocketError);
    socket.on('close', onSocketClose);
    socket.on('drain', onSocketDrain);
  }

  get isConnected(): boolean {
    return this.state === 'connected';
  }

  /** The peer stopped reading: its unsent bytes passed the outbound limit. */
  get congested(): boolean {
    return this.socket.writableLength + this.batchBytes + this.outboxBytes + this.awaitingDurability > this.broker.outboundLimit;
  }

  /** @internal socket listener */
  onData(chunk: Buffer): void {
    if (this.state === 'closed' || this.state === 'closing') return;
    this.broker.clock = Date.now(); // once per chunk; each packet in it reads this
    this.broker.stats.bytesReceived += chunk.length;
    this.bytesIn += chunk.length;
    const error = this.decoder.push(chunk, this.onPacket);
    if (error) this.protocolError(error);
    else if ((this.turnBytes += chunk.length) >= TURN_BYTES && !this.waitingForTurn) {
      // libuv reads a socket up to 32 times in one loop iteration, and writes that had to wait for
      // the kernel go out only between iterations: a flooding publisher would starve its subscribers'
      // sockets until they count as congested. 64 KiB per connection per turn keeps them flowing
      // (counted over chunks: a TLS socket delivers 16 KiB at a time).
      this.setReading('turn', false);
      setImmediate((this.endTurn ??= () => {
        this.turnBytes = 0;
        this.setReading('turn', true);
      }));
    }
  }

  private handlePacket(packet: Packet, size: number): boolean {
    if (this.state === 'closed' || this.state === 'closing') return false;
    // Keep-alive counts Control Packets, not bytes: a trickled partial packet does not keep a client alive.
    this.lastActivity = this.broker.clock;
    this.broker.stats.packetsReceived++;
    let overdrawn = 0;
    if (this.allowance !== undefined && packet.type === PacketType.PUBLISH) {
      overdrawn = this.allowance.take(size, this.broker.clock);
      if (overdrawn > 0 && (this.allowance.action === 'disconnect' || overdrawn > MAX_ALLOWANCE_PAUSE_MS)) {
        this.overAllowance();
        return false;
      }
    }
    let pending: void | Promise<void>;
    try {
      pending = dispatch(this, packet);
    } catch (err) {
      this.fail(err);
      return false;
    }
    if (pending) {
      // An asynchronous hook is deciding: hold later packets back to keep their order,
      // and stop reading so a client cannot pile up bytes meanwhile.
      this.setReading('hook', false);
      pending.then(
        () => {
          if (this.state === 'closed' || this.state === 'closing') return;
          this.setReading('hook', true);
          this.resumeDecoding();
        },
        (err) => this.fail(err),
      );
      if (overdrawn > 0) this.pauseForAllowance(overdrawn);
      return false;
    }
    if (overdrawn > 0 && this.isOpen) {
      this.pauseForAllowance(overdrawn);
      return false;
    }
    return this.isOpen;
  }

  /** Packets already read wait until neither a hook nor the allowance holds them back. */
  private resumeDecoding(): void {
    if (this.waitingForHook || this.waitingForAllowance || !this.isOpen) return;
    const error = this.decoder.resume(this.onPacket);
    if (error) this.protocolError(error);
  }

  /** Backpressure: the message is handled, then nothing more is read until the allowance is in credit again. */
  private pauseForAllowance(ms: number): void {
    this.setReading('allowance', false);
    this.allowanceTimer = setTimeout(() => {
      this.allowanceTimer = undefined;
      if (!this.isOpen) return;
      this.broker.clock = Date.now(); // the packets waiting are charged as of now, not as of the chunk before the pause
      this.setReading('allowance', true);
      this.resumeDecoding();
    }, ms).unref();
  }

  /** The client sent more than its allowance and is disconnected (MQTT 5: 0x96 Message rate too high, 0x97 for bytes). */
  private overAllowance(): void {
    const bytes = this.allowance!.exceeded === 'bytes';
    this.broker.stats.drop('rateLimited');
    this.disconnect(bytes ? ReasonCode.QuotaExceeded : ReasonCode.MessageRateTooHigh, bytes ? 'publishing above its byte rate' : 'publishing above its message rate');
  }

  /** Whether the broker itself is not reading from the client (its silence then does not count against its keep-alive). */
  get heldBack(): boolean {
    return this.waitingForAllowance;
  }

  /** Re-read through a getter: handlers change the state while a packet is processed. */
  private get isOpen(): boolean {
    return this.state !== 'closed' && this.state !== 'closing';
  }

  /** @internal Multi-core mode: a peer worker is behind on what this worker sends it (`Broker.holdReading`). */
  holdForPeers(held: boolean): void {
    if (held !== this.waitingForPeers) this.setReading('peers', !held);
  }

  private setReading(reason: 'hook' | 'peer' | 'turn' | 'peers' | 'allowance', allowed: boolean): void {
    if (reason === 'hook') this.waitingForHook = !allowed;
    else if (reason === 'peer') this.waitingForPeer = !allowed;
    else if (reason === 'turn') this.waitingForTurn = !allowed;
    else if (reason === 'peers') this.waitingForPeers = !allowed;
    else this.waitingForAllowance = !allowed;
    if (this.state === 'closed') return;
    if (this.waitingForHook || this.waitingForPeer || this.waitingForTurn || this.waitingForPeers || this.waitingForAllowance) this.socket.pause();
    else this.socket.resume();
  }

  private fail(err: unknown): void {
    if (err instanceof ProtocolError) this.protocolError(err);
    else {
      this.broker.logger.error({ err, clientId: this.client?.id }, 'internal error while handling a packet');
      this.close('internal error', { cause: 'internal_error' });
    }
  }

  /**
   * Closes the connection for a protocol violation; the will is published [MQTT-4.8.0-1].
   * An MQTT 5 client is told why: DISCONNECT with the reason code [MQTT-4.13.1-1], or
   * CONNACK with it while the connection is being set up.
   */
  protocolError(error: ProtocolError): void {
    if (this.state === 'closed' || this.state === 'closing') return;
    this.decoder.fail(error);
    if (this.state === 'awaiting-connect' && error.reasonCode === ReasonCode.UnsupportedProtocolVersion) {
      this.sendConnack(ConnectReturnCode.UnacceptableProtocolVersion, false); // [MQTT-3.1.2-2]
    } else if (this.version === 5 && this.state === 'connected') {
      this.sendDisconnect(error.reasonCode, error.message);
    } else if (this.version === 5 && this.state === 'connecting') {
      this.sendConnack(error.reasonCode, false);
    }
    this.broker.logger.debug(
      { clientId: this.client?.id, remoteAddress: this.peer.remoteAddress, reason: error.message },
      'protocol error',
    );
    this.broker.emit('clientError', this.client, error);
    // A CONNECT refused: one being handled, or one whose protocol version is not spoken. Bytes that were never a
    // CONNECT (a port scanner, TLS on a plain port) are not counted as refused CONNECTs.
    if (this.state === 'connecting' || error.reasonCode === ReasonCode.UnsupportedProtocolVersion) this.broker.stats.connectRefused(reasonLabel(error.reasonCode));
    this.close(`protocol error: ${error.message}`, { cause: reasonLabel(error.reasonCode) });
  }

  /** Writes are dropped once closing began; a refusal CONNACK is written before close() is called. */
  write(bytes: Buffer): void {
    if (this.state === 'closed' || this.state === 'closing') return;
    this.put(bytes);
    this.broker.stats.packetsSent++;
  }

  /**
   * Durability barrier: what the broker sends to a persistent session reflects
   * only durable state. While the store holds changes not yet durable, its bytes
   * wait in the outbox and leave once everything before them is durable
   * (`whenDurable` calls back in order). A clean session has nothing in the store
   * to wait for (its acknowledgements wait on their own, see `acknowledge`), and
   * with nothing pending (always, for the memory store) bytes join this turn's batch.
   */
  private put(bytes: Buffer): void {
    this.broker.stats.bytesSent += bytes.length;
    this.bytesOut += bytes.length;
    if (this.outbox === undefined && (this.session?.persistent !== true || this.broker.store.durableNow())) {
      (this.batch ??= []).push(bytes);
      this.batchBytes += bytes.length;
      this.scheduleFlush();
      return;
    }
    (this.outbox ??= []).push(bytes);
    this.outboxBytes += bytes.length;
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    this.broker.flushLater(this);
  }

  /** Above the stream's own high-water mark too, so that a 'drain' event is sure to follow. */
  private get pauseThreshold(): number {
    return Math.max(this.broker.limits.maxOutboundBuffer, this.socket.writableHighWaterMark);
  }

  /** Ends the per-turn batch: everything written since the last flush leaves in one socket write. */
  flush(): void {
    this.flushScheduled = false;
    this.writeBatch();
    const held = this.outbox;
    if (held === undefined) return;
    const bytes = this.outboxBytes;
    this.outbox = undefined;
    this.outboxBytes = 0;
    this.awaitingDurability += bytes;
    this.broker.store.whenDurable(() => {
      this.awaitingDurability -= bytes;
      if (this.socket.destroyed) return;
      // What an earlier durability callback of this round wrote comes first.
      this.writeBatch();
      this.writeOut(held, bytes);
    });
  }

  private writeBatch(): void {
    const batch = this.batch;
    if (batch === undefined) return;
    const bytes = this.batchBytes;
    this.batch = undefined;
    this.batchBytes = 0;
    this.writeOut(batch, bytes);
  }

  /** Writes a batch in as few buffers as it takes (see coalesce.ts for why). */
  private writeOut(chunks: Buffer[], bytes: number): void {
    const socket = this.socket;
    if (chunks.length === 1) socket.write(chunks[0]!);
    else if (bytes <= COALESCE_CHUNK) socket.write(Buffer.concat(chunks, bytes));
    else {
      const buffers = coalesce(chunks);
      if (buffers.length === 1) socket.write(buffers[0]!);
      else {
        socket.cork();
        for (const buffer of buffers) socket.write(buffer);
        socket.uncork();
      }
    }
    // A client that sends without reading its replies is read no further until its socket drains.
    if (!this.waitingForPeer && socket.writableLength > this.pauseThreshold) this.setReading('peer', false);
  }

  sendConnack(returnCode: number, sessionPresent: boolean, properties?: Properties): void {
    const packet: ConnackPacket = { type: PacketType.CONNACK, returnCode, sessionPresent };
    if (properties) packet.properties = properties;
    this.write(encodeConnack(packet, this.version));
  }

  /**
   * Acknowledges a client's PUBLISH or PUBREL once what handling it stored is durable
   * [MQTT-4.3.2-2], [MQTT-4.3.3-2], in the order the packets came [MQTT-4.6.0-2..4].
   * A packet that stored nothing (`changesBefore` is the store's change count before
   * handling it) is acknowledged at once when no earlier acknowledgement waits, so a
   * client that touches no persistent state is not held behind others' disk writes.
   */
  acknowledge(type: AckType, packetId: number, reasonCode: number, changesBefore: number): void {
    const store = this.broker.store;
    if (this.acksWaiting === 0 && (store.changes === changesBefore || store.durableNow())) {
      this.sendAck(type, packetId, reasonCode);
      return;
    }
    this.acksWaiting++;
    if (type === PacketType.PUBACK) this.pendingPubacks++;
    store.whenDurable(() => {
      this.acksWaiting--;
      if (type === PacketType.PUBACK) this.pendingPubacks--;
      this.sendAck(type, packetId, reasonCode);
    });
  }

  sendAck(type: AckType, packetId: number, reasonCode = 0, reasonString?: string): void {
    this.write(encodeAck(type, packetId, this.version, reasonCode, this.problemProperties(reasonString)));
  }

  sendSuback(packetId: number, returnCodes: number[]): void {
    this.write(encodeSuback({ type: PacketType.SUBACK, packetId, returnCodes }, this.version));
  }

  sendUnsuback(packetId: number, reasonCodes: number[]): void {
    this.write(encodeUnsuback({ type: PacketType.UNSUBACK, packetId, reasonCodes }, this.version));
  }

  /**
   * MQTT 5 only: DISCONNECT from the server carries why [MQTT-3.14.2-1]; the
   * Reason String is left out if the client did not ask for problem information
   * or it would not fit the client's Maximum Packet Size [MQTT-3.14.2-3].
   */
  sendDisconnect(reasonCode: number, reasonString?: string): void {
    if (this.version !== 5) return;
    const withReason = reasonString && this.requestProblemInformation
      ? encodeReasoned(PacketType.DISCONNECT, reasonCode, { reasonString }, 5)
      : undefined;
    this.write(withReason && withReason.length <= this.clientMaximumPacketSize
      ? withReason
      : encodeReasoned(PacketType.DISCONNECT, reasonCode, undefined, 5));
  }

  sendAuth(reasonCode: number, properties: Properties): void {
    this.write(encodeReasoned(PacketType.AUTH, reasonCode, properties, 5));
  }

  /** Reason strings only if the client did not turn Request Problem Information off [MQTT-3.1.2-29]. */
  private problemProperties(reasonString: string | undefined): Properties | undefined {
    return reasonString !== undefined && this.version === 5 && this.requestProblemInformation ? { reasonString } : undefined;
  }

  /**
   * Server-initiated disconnection: MQTT 5 clients get DISCONNECT with the
   * reason code first; the will is published unless `publishWill` is false.
   */
  disconnect(reasonCode: number, reason: string, options: { publishWill?: boolean } = {}): void {
    if (this.state === 'connected') this.sendDisconnect(reasonCode);
    this.close(reason, { ...options, cause: reasonLabel(reasonCode) });
  }

  sendPingresp(): void {
    this.write(encodeEmpty(PacketType.PINGRESP));
  }

  /**
   * Header and payload as two writes, so the payload is never copied. Returns
   * false (and sends nothing) if the packet exceeds the client's Maximum Packet Size.
   */
  sendPublish(message: Message, qos: QoS, packetId: number, dup: boolean): boolean {
    if (this.state === 'closed' || this.state === 'closing') return true;
    let header: Buffer;
    if (this.version === 5) {
      const encoded = this.encodeV5Header(message, qos, packetId, dup);
      if (!encoded) return false;
      header = encoded;
    } else {
      header = encodePublishHeader(message.topic, topicByteLength(message), qos, message.retain, dup, packetId, message.payload.length);
    }
    this.write(header);
    if (message.payload.length > 0) this.put(message.payload);
    this.countPublishSent(qos, message.payload.length);
    return true;
  }

  /** A PUBLISH gone to this client (its bytes are counted as they are put in the batch). */
  countPublishSent(qos: QoS, payloadBytes: number): void {
    const stats = this.broker.stats;
    stats.publishSent++;
    stats.publishSentByQos[qos]++;
    stats.payloadBytesSentByQos[qos] += payloadBytes;
    this.publishesOut++;
  }

  /**
   * The MQTT 5 PUBLISH header: properties with the expiry counted down, and a
   * topic alias when enabled. An alias is only set up if the packet carrying it
   * fits the client's Maximum Packet Size; undefined if even the plain packet does not.
   */
  private encodeV5Header(message: Message, qos: QoS, packetId: number, dup: boolean): Buffer | undefined {
    const base = outgoingProperties(message);
    const topicLength = topicByteLength(message);
    const payloadLength = message.payload.length;
    const fits = (length: number, properties: Properties | undefined): boolean =>
      publishPacketSize(length, qos, payloadLength, 5, properties) <= this.clientMaximumPacketSize;
    if (this.outgoingAliasLimit > 0) {
      const aliases = (this.outgoingAliases ??= new Map());
      const known = aliases.get(message.topic);
      if (known !== undefined) {
        const properties = { ...base, topicAlias: known };
        if (fits(0, properties)) return encodePublishHeader('', 0, qos, message.retain, dup, packetId, payloadLength, 5, properties);
      } else if (aliases.size < this.outgoingAliasLimit) {
        const properties = { ...base, topicAlias: aliases.size + 1 };
        if (fits(topicLength, properties)) {
          aliases.set(message.topic, properties.topicAlias);
          return encodePublishHeader(message.topic, topicLength, qos, message.retain, dup, packetId, payloadLength, 5, properties);
        }
      }
    }
    if (!fits(topicLength, base)) return undefined;
    return encodePublishHeader(message.topic, topicLength, qos, message.retain, dup, packetId, payloadLength, 5, base);
  }

  /** Whether a PUBLISH of this message would exceed the client's Maximum Packet Size [MQTT-3.1.2-24]. */
  exceedsMaximumPacketSize(message: Message, qos: QoS): boolean {
    if (this.clientMaximumPacketSize === Number.POSITIVE_INFINITY) return false;
    const size = publishPacketSize(topicByteLength(message), qos, message.payload.length, 5, outgoingProperties(message));
    return size > this.clientMaximumPacketSize;
  }

  /** @internal socket listener */
  onDrain(): void {
    if (this.state === 'closed' || this.state === 'closing') return;
    if (this.waitingForPeer) this.setReading('peer', true);
    if (this.state === 'connected' && this.session) this.broker.delivery.drainQueue(this.session);
  }

  /**
   * Closes the connection once. Unless the client sent DISCONNECT, its will is
   * published [MQTT-3.1.2-8]. Pending writes are flushed first; the housekeeper
   * destroys sockets whose peer does not finish closing.
   */
  /** `cause`: the disconnect as /metrics counts it (a reason label, `client`, `connection_lost`, ...). */
  close(reason: string, options: { graceful?: boolean; publishWill?: boolean; cause?: string } = {}): void {
    if (this.state === 'closed' || this.state === 'closing') return;
    const wasConnected = this.state === 'connected';
    if (wasConnected) this.broker.stats.disconnected(options.cause ?? 'other');
    this.state = 'closing';
    this.closingSince = Date.now();
    if (this.allowanceTimer) clearTimeout(this.allowanceTimer); // a closed connection is not kept for it
    this.flush();
    this.socket.once('close', () => {
      this.state = 'closed';
      this.broker.connectionGone(this);
    });
    if (this.socket.destroyed) {
      this.state = 'closed';
      this.broker.connectionGone(this);
    } else if (this.awaitingDurability > 0) {
      this.broker.store.whenDurable(() => this.socket.end()); // after the bytes waiting for the store
    } else {
      this.socket.end();
    }
    this.broker.connectionClosed(this, reason, wasConnected, options.graceful === true, options.publishWill !== false);
  }

  /** Forcibly releases the socket (the peer did not close in time). */
  destroy(): void {
    this.socket.destroy();
  }
}
