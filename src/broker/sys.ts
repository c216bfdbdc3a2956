import type { BrokerStats } from './stats.js';

export interface SysSnapshot {
  stats: BrokerStats;
  version: string;
  disconnectedSessions: number;
  subscriptions: number;
  retained: number;
  overloaded: boolean;
  storedSessions: number;
  /** V8 heap in use, bytes (summed over the processes of a multi-core broker). */
  heapUsed: number;
}

/**
 * The $SYS/broker/... topics and their values, named as Mosquitto names them
 * so existing dashboards keep working.
 */
export function sysTopics(s: SysSnapshot, now: number): Array<[string, string]> {
  const { stats } = s;
  const connected = stats.connectedClients;
  return [
    ['$SYS/broker/version', s.version],
    ['$SYS/broker/uptime', `${Math.floor((now - stats.startedAt) / 1000)} seconds`],
    ['$SYS/broker/clients/connected', String(connected)],
    ['$SYS/broker/clients/active', String(connected)],
    ['$SYS/broker/clients/disconnected', String(s.disconnectedSessions)],
    ['$SYS/broker/clients/inactive', String(s.disconnectedSessions)],
    ['$SYS/broker/clients/total', String(connected + s.disconnectedSessions)],
    ['$SYS/broker/clients/maximum', String(stats.maxConnectedClients)],
    ['$SYS/broker/subscriptions/count', String(s.subscriptions)],
    ['$SYS/broker/retained messages/count', String(s.retained)],
    ['$SYS/broker/retained messages/refused', String(stats.retainedRefused)],
    ['$SYS/broker/tls/handshakes/failed', String(stats.tlsHandshakesFailed)],
    ['$SYS/broker/messages/received', String(stats.packetsReceived)],
    ['$SYS/broker/messages/sent', String(stats.packetsSent)],
    ['$SYS/broker/publish/messages/received', String(stats.publishReceived)],
    ['$SYS/broker/publish/messages/sent', String(stats.publishSent)],
    ['$SYS/broker/publish/messages/dropped', String(stats.publishDropped)],
    ['$SYS/broker/publish/messages/dropped/queue full', String(stats.queueDropped)],
    ['$SYS/broker/bytes/received', String(stats.bytesReceived)],
    ['$SYS/broker/bytes/sent', String(stats.bytesSent)],
    ['$SYS/broker/heap/current', String(s.heapUsed)],
    ['$SYS/broker/security/overload/active', s.overloaded ? '1' : '0'],
    ['$SYS/broker/security/overload/count', String(stats.overloads)],
    ['$SYS/broker/security/overload/refused', String(stats.overloadRefused)],
    ['$SYS/broker/security/overload/shed', String(stats.shed)],
    ['$SYS/broker/security/sessions/stored', String(s.storedSessions)],
    ['$SYS/broker/security/sessions/dropped', String(stats.sessionsDropped)],
    ['$SYS/broker/security/sessions/refused', String(stats.sessionsRefused)],
  ];
}
