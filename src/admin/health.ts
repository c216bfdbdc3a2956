import type { Broker } from '../broker/broker.js';

/** What /readyz answers: ready, or why not (for load balancers and orchestrators, and the operator reading it). */
export interface Readiness {
  ready: boolean;
  /** Why the broker should get no new clients now: starting (listeners binding, state recovering), stopping, overloaded. */
  reasons: string[];
}

/**
 * Ready: every listener bound and the stored state recovered (the store open), not stopping, and not shedding load
 * (memory past the high-water mark refuses new clients anyway). /healthz is the process answering at all.
 */
export function readiness(broker: Broker): Readiness {
  const reasons: string[] = [];
  if (broker.isClosing) reasons.push('stopping');
  else if (!broker.isReady) reasons.push('starting: listeners binding or stored state recovering');
  if (broker.memory.overloaded) reasons.push('overloaded: memory past the high-water mark, new clients refused');
  return { ready: reasons.length === 0, reasons };
}
