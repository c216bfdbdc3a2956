import { randomBytes } from 'node:crypto';
import {
  ConnectReturnCode, MAX_CLIENT_ID_LENGTH_V31, protocolViolation, ReasonCode, type ConnectPacket, type Properties,
  type WillMessage,
} from '../../protocol/index.js';
import type { Connection } from '../connection.js';
import { reasonLabel } from '../stats.js';
import type { AuthStep } from '../enhanced-auth.js';
import { BANNED, SERVER_BUSY, type ClientInfo } from '../hooks.js';

/** The MQTT 5 reason code for each 3.1.1 CONNACK return code. */
const V5_REFUSAL: Record<number, number> = {
  [ConnectReturnCode.UnacceptableProtocolVersion]: ReasonCode.UnsupportedProtocolVersion,
  [ConnectReturnCode.IdentifierRejected]: ReasonCode.ClientIdentifierNotValid,
  [ConnectReturnCode.ServerUnavailable]: ReasonCode.ServerUnavailable,
  [ConnectReturnCode.BadUsernameOrPassword]: ReasonCode.BadUserNameOrPassword,
  [ConnectReturnCode.NotAuthorized]: ReasonCode.NotAuthorized,
};

interface PendingConnect {
  packet: ConnectPacket;
  clientId: string;
  assigned: boolean;
}

export function handleConnect(conn: Connection, packet: ConnectPacket): void | Promise<void> {
  const broker = conn.broker;
  const caps = broker.capabilities;
  const v5 = packet.protocolVersion === 5;
  conn.version = packet.protocolVersion;
  conn.state = 'connecting';
  if (v5) applyClientLimits(conn, packet.properties);

  let clientId = packet.clientId;
  let assigned = false;
  // MQTT 3.1 identifiers are 1 to 23 characters; longer ones are rejected with return code 2.
  if (packet.protocolVersion === 3 && [...clientId].length > MAX_CLIENT_ID_LENGTH_V31) {
    return refuse(conn, ConnectReturnCode.IdentifierRejected);
  }
  // Before an identifier is assigned: an empty one names no one, to ban or to count as flapping.
  if (broker.hooks.screenConnect) {
    const screened = broker.screenConnect(conn, packet);
    if (screened === 'banned') return refuse(conn, ConnectReturnCode.NotAuthorized, ReasonCode.Banned);
    if (screened === 'failed') return refuse(conn, ConnectReturnCode.ServerUnavailable);
  }
  if (clientId.length === 0) {
    // 3.1 requires an identifier; 3.1.1 allows an empty one only with a clean session [MQTT-3.1.3-8];
    // MQTT 5 always assigns one and says which in CONNACK [MQTT-3.2.2-16].
    if (packet.protocolVersion === 3 || (packet.protocolVersion === 4 && !packet.clean)) {
      return refuse(conn, ConnectReturnCode.IdentifierRejected);
    }
    clientId = broker.assignClientId?.() ?? `moat-${randomBytes(9).toString('base64url')}`; // [MQTT-3.1.3-6]
    assigned = true;
    // From here on the packet names the identifier the session has, so the authentication request built
    // from it (providers, HTTP hooks, the audit trail) carries the assigned id, not an empty one.
    packet.clientId = clientId;
  }
  if (broker.isClosing || broker.stats.connectedClients >= broker.limits.maxConnections) {
    return refuse(conn, ConnectReturnCode.ServerUnavailable);
  }
  // Overload protection: memory past the high-water mark takes no one new until it is back below the low one.
  // A client resuming its stored session is let in: what waits for it is part of that memory, and leaves with it.
  if (broker.memory.overloaded && (packet.clean || broker.sessions.get(clientId)?.persistent !== true)) {
    broker.stats.overloadRefused++;
    return refuse(conn, ConnectReturnCode.ServerUnavailable, ReasonCode.ServerBusy);
  }
  // limits.maxKeepalive holds a longer keep-alive (or 0, none) to the cap. MQTT 5 is told in CONNACK [MQTT-3.2.2-21];
  // MQTT 3.1/3.1.1 cannot be, and silently enforcing it would cut idle clients off in a loop: refused, as Mosquitto does.
  const maxKeepalive = broker.limits.maxKeepalive;
  let keepalive = v5 ? caps.serverKeepAlive ?? packet.keepalive : packet.keepalive;
  if (maxKeepalive > 0 && (keepalive === 0 || keepalive > maxKeepalive)) {
    if (!v5) {
      const fields = { clientId, remoteAddress: conn.peer.remoteAddress, keepalive, maxKeepalive };
      broker.logger.info(fields, 'connection refused: keep-alive above limits.max_keepalive');
      return refuse(conn, ConnectReturnCode.IdentifierRejected);
    }
    keepalive = maxKeepalive;
  }
  conn.keepalive = keepalive; // enforced by the housekeeper once connected [MQTT-3.1.2-24]
  const will = packet.will;
  if (will) {
    if (broker.topicLimitError(will.topic)) return refuse(conn, ConnectReturnCode.NotAuthorized, ReasonCode.TopicNameInvalid);
    if (v5 && will.qos > caps.maximumQoS) return refuse(conn, ConnectReturnCode.NotAuthorized, ReasonCode.QoSNotSupported);
    if (v5 && will.retain && !caps.retainAvailable) return refuse(conn, ConnectReturnCode.NotAuthorized, ReasonCode.RetainNotSupported);
  }

  const pending: PendingConnect = { packet, clientId, assigned };
  const method = packet.properties?.authenticationMethod;
  if (method === undefined && packet.properties?.authenticationData !== undefined) {
    throw protocolViolation('Authentication Data without an Authentication Method'); // section 3.1.2.11.10
  }
  if (method !== undefined) {
    const mechanism = broker.authMethods.get(method);
    if (!mechanism) return refuse(conn, ConnectReturnCode.NotAuthorized, ReasonCode.BadAuthenticationMethod);
    conn.authMethod = method;
    conn.authExchange = mechanism.begin(broker.authenticationRequest(conn, packet), false);
    conn.pendingConnect = pending;
    return continueAuthentication(conn, packet.properties?.authenticationData);
  }

  const verdict = broker.authenticate(conn, packet);
  if (typeof verdict === 'number') return finishConnect(conn, pending, verdict, undefined);
  return verdict.then((code) => finishConnect(conn, pending, code, undefined));
}

function applyClientLimits(conn: Connection, props: Properties | undefined): void {
  if (!props) return;
  if (props.receiveMaximum !== undefined) conn.clientReceiveMaximum = props.receiveMaximum;
  if (props.maximumPacketSize !== undefined) conn.clientMaximumPacketSize = props.maximumPacketSize;
  conn.outgoingAliasLimit = Math.min(conn.broker.capabilities.outgoingTopicAliases, props.topicAliasMaximum ?? 0);
  if (props.requestProblemInformation === 0) conn.requestProblemInformation = false;
}

/** Feeds the client's Authentication Data to the running exchange (CONNECT or AUTH during connect). */
export function continueAuthentication(conn: Connection, data: Buffer | undefined): void | Promise<void> {
  let step: AuthStep | Promise<AuthStep>;
  try {
    step = conn.authExchange!.step(data);
  } catch (err) {
    return authenticationBroke(conn, err);
  }
  if (step instanceof Promise) return step.then((s) => applyStep(conn, s), (err: unknown) => authenticationBroke(conn, err));
  return applyStep(conn, step);
}

function applyStep(conn: Connection, step: AuthStep): void | Promise<void> {
  if (conn.state !== 'connecting') return;
  const pending = conn.pendingConnect!;
  if (step.result === 'continue') {
    const properties: Properties = { authenticationMethod: conn.authMethod! };
    if (step.data) properties.authenticationData = step.data;
    conn.sendAuth(ReasonCode.ContinueAuthentication, properties);
    return;
  }
  conn.authExchange = undefined;
  conn.pendingConnect = undefined;
  if (step.result === 'success' && step.identity) conn.identity = step.identity;
  if (step.result === 'failure') {
    if (step.reason === 'banned') return refuse(conn, ConnectReturnCode.NotAuthorized, ReasonCode.Banned);
    return refuse(conn, step.reason === 'notAuthorized' ? ConnectReturnCode.NotAuthorized : ConnectReturnCode.BadUsernameOrPassword);
  }
  return finishConnect(conn, pending, ConnectReturnCode.Accepted, step.data);
}

function authenticationBroke(conn: Connection, err: unknown): void {
  conn.broker.logger.error({ err, remoteAddress: conn.peer.remoteAddress }, 'authentication method failed');
  if (conn.state === 'connecting') refuse(conn, ConnectReturnCode.ServerUnavailable, ReasonCode.UnspecifiedError);
}

function finishConnect(conn: Connection, pending: PendingConnect, returnCode: number, authData: Buffer | undefined): void | Promise<void> {
  if (conn.state !== 'connecting') return; // the socket went away while a hook was deciding
  if (returnCode === BANNED) return refuse(conn, ConnectReturnCode.NotAuthorized, ReasonCode.Banned);
  if (returnCode === SERVER_BUSY) return refuse(conn, ConnectReturnCode.ServerUnavailable, ReasonCode.ServerBusy);
  if (returnCode !== ConnectReturnCode.Accepted) return refuse(conn, returnCode);
  const { packet, clientId } = pending;
  const broker = conn.broker;
  const client: ClientInfo = {
    id: clientId,
    username: packet.username,
    protocolVersion: packet.protocolVersion,
    clean: packet.clean,
    keepalive: packet.keepalive,
    remoteAddress: conn.peer.remoteAddress,
    remotePort: conn.peer.remotePort,
    listener: conn.listener.name,
    ...(conn.identity && { identity: conn.identity }),
  };
  conn.client = client;
  conn.identity = undefined;
  // The will is authorized now, and again when it is published: a client may not leave a message it could not send.
  const will = packet.will;
  const authorize = broker.hooks.authorizePublish;
  if (will && authorize) {
    let verdict: boolean | Promise<boolean>;
    try {
      verdict = authorize(client, will, 'will');
    } catch (err) {
      return authenticationBroke(conn, err); // fail closed: CONNACK 3 / 0x80
    }
    if (verdict instanceof Promise) {
      return verdict.then(
        (allowed) => {
          if (allowed) return completeConnect(conn, pending, client, authData);
          else if (conn.state === 'connecting') refuse(conn, ConnectReturnCode.NotAuthorized, undefined, WILL_REFUSED);
        },
        (err: unknown) => authenticationBroke(conn, err),
      );
    }
    if (!verdict) return refuse(conn, ConnectReturnCode.NotAuthorized, undefined, WILL_REFUSED);
  }
  return completeConnect(conn, pending, client, authData);
}

/** How /metrics counts a CONNECT refused because its will may not be published: apart from authentication failures. */
const WILL_REFUSED = 'will_not_authorized';

function completeConnect(conn: Connection, pending: PendingConnect, client: ClientInfo, authData: Buffer | undefined): void | Promise<void> {
  if (conn.state !== 'connecting') return;
  const { packet, clientId, assigned } = pending;
  void client; // conn.client already holds it
  const broker = conn.broker;
  const caps = broker.capabilities;
  // The will may wait a long time: keep its own copy, not a view of a 64 KiB socket chunk.
  conn.will = packet.will && ownedWill(packet.will);

  let expiry: number;
  let properties: Properties | undefined;
  // A client no authentication vouched for may leave a session behind for a shorter time.
  const anonymousCap = conn.anonymous && broker.limits.maxSessionExpiryAnonymous > 0 ? broker.limits.maxSessionExpiryAnonymous : Infinity;
  const maxExpiry = Math.min(caps.maximumSessionExpiryInterval, anonymousCap);
  if (packet.protocolVersion === 5) {
    const requested = packet.properties?.sessionExpiryInterval ?? 0;
    conn.requestedSessionExpiry = requested;
    expiry = Math.min(requested, maxExpiry);
    // Server Keep Alive whenever the broker does not use the client's own value [MQTT-3.2.2-21], [MQTT-3.2.2-22].
    const serverKeepAlive = conn.keepalive !== packet.keepalive || caps.serverKeepAlive !== undefined ? conn.keepalive : undefined;
    properties = connackProperties(conn, expiry !== requested ? expiry : undefined, assigned ? clientId : undefined, authData, serverKeepAlive);
  } else {
    // 3.1.1 persistent sessions last until a clean connect, unless the operator caps session lifetimes.
    expiry = packet.clean ? 0 : maxExpiry;
  }
  if (expiry > 0 && !broker.roomForSession(conn, clientId, packet.clean)) {
    return refuse(conn, ConnectReturnCode.ServerUnavailable, ReasonCode.QuotaExceeded);
  }
  // Cluster mode: the session may be on another node; it comes here first.
  const claimed = broker.sessionOwnership?.claim(clientId, packet.clean);
  if (claimed instanceof Promise) {
    return claimed.then(
      () => attach(conn, clientId, packet.clean, expiry, properties),
      (err: unknown) => {
        broker.logger.error({ err: (err as Error).message, clientId }, 'session could not be claimed from another node');
        if (conn.state === 'connecting') refuse(conn, ConnectReturnCode.ServerUnavailable, ReasonCode.ServerUnavailable);
      },
    );
  }
  attach(conn, clientId, packet.clean, expiry, properties);
}

function attach(conn: Connection, clientId: string, clean: boolean, expiry: number, properties: Properties | undefined): void {
  if (conn.state !== 'connecting') return; // the socket went away while the session was claimed
  const broker = conn.broker;
  const { session, present } = broker.attachSession(conn, clientId, clean, expiry);
  if (conn.will) broker.sessionOwnership?.willKept?.(clientId, conn.will);
  conn.state = 'connected';
  conn.allowance = broker.publishAllowance(conn.client!);
  // Session present is 0 for a clean session [MQTT-3.2.2-1] and tells whether state was resumed otherwise [MQTT-3.2.2-2].
  conn.sendConnack(ConnectReturnCode.Accepted, present, properties);
  if (present) {
    broker.delivery.resendInflight(session);
    broker.delivery.drainQueue(session);
  }
  // After the resends, so that a listener publishing here cannot overtake them [MQTT-4.6.0-1].
  broker.clientConnected(conn);
}

function ownedWill(will: WillMessage): WillMessage {
  const owned: WillMessage = { ...will, payload: Buffer.from(will.payload) };
  const correlation = will.properties?.correlationData;
  if (correlation) owned.properties = { ...will.properties, correlationData: Buffer.from(correlation) };
  return owned;
}

/** The CONNACK properties of MQTT 5: what the broker offers, from its capabilities. */
function connackProperties(
  conn: Connection, grantedExpiry: number | undefined, assignedId: string | undefined, authData: Buffer | undefined,
  serverKeepAlive: number | undefined,
): Properties {
  const caps = conn.broker.capabilities;
  const p: Properties = { maximumPacketSize: conn.broker.limits.maxPacketSize };
  if (grantedExpiry !== undefined) p.sessionExpiryInterval = grantedExpiry;
  if (assignedId !== undefined) p.assignedClientIdentifier = assignedId;
  if (caps.receiveMaximum < 65_535) p.receiveMaximum = caps.receiveMaximum;
  if (caps.maximumQoS < 2) p.maximumQoS = caps.maximumQoS;
  if (!caps.retainAvailable) p.retainAvailable = 0;
  if (caps.topicAliasMaximum > 0) p.topicAliasMaximum = caps.topicAliasMaximum;
  if (!caps.wildcardSubscriptionAvailable) p.wildcardSubscriptionAvailable = 0;
  if (!caps.subscriptionIdentifiersAvailable) p.subscriptionIdentifiersAvailable = 0;
  if (!caps.sharedSubscriptionAvailable) p.sharedSubscriptionAvailable = 0;
  if (serverKeepAlive !== undefined) p.serverKeepAlive = serverKeepAlive;
  if (conn.authMethod !== undefined) {
    p.authenticationMethod = conn.authMethod;
    if (authData) p.authenticationData = authData;
  }
  return p;
}

/**
 * A CONNACK with a refusal is followed by closing the connection [MQTT-3.2.2-5]
 * (MQTT 5: reason code 0x80 or above [MQTT-3.2.2-7]); session present 0 [MQTT-3.2.2-4].
 */
function refuse(conn: Connection, returnCode: number, reasonCodeV5?: number, countAs?: string): void {
  const v5Code = reasonCodeV5 ?? V5_REFUSAL[returnCode] ?? returnCode;
  conn.broker.stats.connectRefused(countAs ?? reasonLabel(v5Code));
  conn.sendConnack(conn.version === 5 ? v5Code : returnCode, false);
  conn.close(`connection refused, return code ${returnCode}`, { publishWill: false });
}
