import type { AuthenticateRequest, ClientIdentity } from './hooks.js';

type MaybePromise<T> = T | Promise<T>;

/** One step of an MQTT 5 enhanced authentication exchange. */
export type AuthStep =
  /** Authenticated; `data` goes to the client in CONNACK (or AUTH after re-authentication). */
  | { result: 'success'; data?: Buffer; identity?: ClientIdentity }
  /** Send `data` to the client in AUTH (Continue Authentication) and wait for its answer. */
  | { result: 'continue'; data?: Buffer }
  /** Refused: CONNACK (or DISCONNECT) with Bad User Name or Password, Not Authorized, or Banned (0x8A). */
  | { result: 'failure'; reason?: 'badCredentials' | 'notAuthorized' | 'banned' };

/** One running exchange; `step` receives the client's Authentication Data each round. */
export interface AuthExchange {
  step(data: Buffer | undefined): MaybePromise<AuthStep>;
}

/**
 * An enhanced authentication method (MQTT 5 section 4.12), named by the
 * Authentication Method property: SCRAM and others plug in here.
 */
export interface AuthMethod {
  /** Starts an exchange for a CONNECT (or a re-authentication, `reauthenticate` true). */
  begin(request: AuthenticateRequest, reauthenticate: boolean): AuthExchange;
}
