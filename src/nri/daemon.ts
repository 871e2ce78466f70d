/**
 * The daemon's connection loop. External mode connects to the runtime's NRI socket and, when
 * the runtime goes away (restart, upgrade), reconnects with backoff: 0.5 s doubling to 10 s,
 * back to 0.5 s once a connection got as far as Synchronize. The plugin and what it knows of
 * the pods live across connections; Synchronize after each reconnect converges anyway.
 * Pre-installed mode serves the one inherited connection: when it ends the runtime is going
 * away (it relaunches its plugins when it comes back), and so do we.
 */
import { createConnection, Socket } from 'node:net';
import { oneLine } from '../domain/errors.js';
import type { Logger } from '../log.js';
import type { Connection } from './args.js';
import { serveStub, type PluginHandlers, type StubEnd } from './stub.js';

export const BACKOFF_FIRST_MS = 500;
export const BACKOFF_MAX_MS = 10_000;

export interface DaemonOptions {
  connection: Connection;
  name: string;
  idx: string;
  handlers: PluginHandlers;
  log: Logger;
  /** aborted to stop: the current connection is closed and runDaemon resolves */
  signal: AbortSignal;
  /** called after every connection that reached Synchronize ended (tests) */
  onConnectionEnd?: (end: StubEnd) => void;
}

/** The delay before the next attempt after one that waited `previous` ms. */
export const nextBackoff = (previous: number): number => Math.min(BACKOFF_MAX_MS, previous * 2);

export async function runDaemon(opts: DaemonOptions): Promise<void> {
  const { connection, log, signal } = opts;
  if (connection.mode === 'pre-installed') {
    const socket = new Socket({ fd: connection.fd, readable: true, writable: true });
    const end = await serve(socket, opts, () => undefined);
    log.info({ shutdown: end.shutdown, err: end.error && oneLine(end.error) }, 'runtime connection closed: exiting');
    return;
  }
  let delay = BACKOFF_FIRST_MS;
  let failures = 0;
  while (!signal.aborted) {
    const socket = await connect(connection.socketPath).catch((e: NodeJS.ErrnoException) => {
      // logged on the first failure of a streak, then every 30th: a runtime may stay down for long
      if (failures++ % 30 === 0) log.warn({ socket: connection.socketPath, err: e.code ?? e.message, retryMs: delay }, 'cannot connect to the runtime: retrying');
      return undefined;
    });
    if (socket !== undefined) {
      log.info({ socket: connection.socketPath }, 'connected to the runtime');
      const end = await serve(socket, opts, () => {
        delay = BACKOFF_FIRST_MS;
        failures = 0;
      });
      log[end.error ? 'warn' : 'info']({ shutdown: end.shutdown, ready: end.ready, err: end.error && oneLine(end.error) }, 'runtime connection closed');
      opts.onConnectionEnd?.(end);
    }
    if (signal.aborted) break;
    await sleep(delay, signal);
    delay = nextBackoff(delay);
  }
}

function serve(socket: Socket, opts: DaemonOptions, onReady: () => void): Promise<StubEnd> {
  const stop = (): void => {
    socket.destroy();
  };
  opts.signal.addEventListener('abort', stop, { once: true });
  return serveStub(socket, opts.handlers, { name: opts.name, idx: opts.idx, log: opts.log, onReady }).finally(() =>
    opts.signal.removeEventListener('abort', stop),
  );
}

function connect(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.removeListener('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
