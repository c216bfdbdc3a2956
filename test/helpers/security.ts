import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

/**
 * Connects with MQTT.js and resolves with the CONNACK's code: 0 with the client when accepted,
 * the refusal code otherwise (the client is closed), -2 when the connection closed without a CONNACK.
 */
export function connackCode(url: string, options: IClientOptions): Promise<{ code: number; client?: MqttClient }> {
  return new Promise((resolve) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
    client.once('connect', () => resolve({ code: 0, client }));
    client.once('error', (err) => {
      client.end(true);
      resolve({ code: (err as { code?: number }).code ?? -1 });
    });
    client.once('close', () => resolve({ code: -2 }));
  });
}
