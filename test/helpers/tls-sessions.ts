import tls from 'node:tls';

/** The session ticket a first TLS connection is given (it waits for the ticket, which comes after the handshake). */
export function sessionTicket(options: tls.ConnectionOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(options);
    socket.once('session', (session: Buffer) => {
      socket.destroy();
      resolve(session);
    });
    socket.once('error', reject);
  });
}

/** Whether a connection offering `ticket` resumed its session (no full handshake). */
export function resumes(options: tls.ConnectionOptions, ticket: Buffer): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ ...options, session: ticket }, () => {
      resolve(socket.isSessionReused());
      socket.destroy();
    });
    socket.once('error', reject);
  });
}
