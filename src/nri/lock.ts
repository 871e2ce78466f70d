/**
 * One netqos NRI plugin per node: the pre-installed plugin and the external daemon (systemd or
 * DaemonSet) must never shape the same pods twice. The lock is a unix socket bound at a fixed
 * path (/run/netqos/nri.lock); its holder answers every connection with who it is.
 *
 * Why a socket: binding is atomic (EADDRINUSE for the second), and liveness is a connect, not a
 * guess from a pid file: a socket file left by a killed holder (containerd SIGKILLs the plugins
 * it launched) refuses connections, and is replaced. Two instances that find the same stale
 * file at the same moment could both replace it; each therefore checks, after binding and
 * every few seconds after, that the path still leads to itself, and the one that lost stops.
 * (A server that lost is never closed: libuv unlinks a unix socket's path when it closes it,
 * which would remove the winner's.)
 */
import { mkdirSync, statSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { dirname } from 'node:path';
import { NetqosError } from '../domain/errors.js';

export interface Holder {
  pid: number;
  mode: string;
}

export interface Lock {
  readonly path: string;
  /** calls onLost (once) if the lock file stops being ours; checked every intervalMs */
  watch(onLost: (holder: Holder | undefined) => void, intervalMs?: number): void;
  release(): Promise<void>;
}

export async function acquireLock(path: string, me: Holder): Promise<Lock> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  for (let attempt = 0; attempt < 3; attempt++) {
    const server = await bind(path, me).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE') return undefined;
      throw new NetqosError('INVALID_ARGUMENT', `cannot create the lock ${path}: ${e.code ?? e.message}; use --lock with a writable directory`, { cause: e });
    });
    if (server === undefined) {
      const other = await ask(path);
      if (other !== undefined) throw alreadyRunning(path, other);
      unlinkQuietly(path); // stale: its holder is gone
      continue;
    }
    const ino = inode(path);
    const owner = await ask(path);
    if (owner?.pid !== me.pid || ino === undefined) {
      // lost a race for a stale file: not closed, as closing would unlink the winner's socket
      throw alreadyRunning(path, owner ?? { pid: 0, mode: 'unknown' });
    }
    return held(path, server, ino);
  }
  throw new NetqosError('ALREADY_RUNNING', `cannot take the lock ${path}: it keeps changing; another netqos NRI plugin is starting`);
}

function held(path: string, server: Server, ino: string): Lock {
  let timer: NodeJS.Timeout | undefined;
  return {
    path,
    watch(onLost, intervalMs = 5000) {
      timer = setInterval(() => {
        if (inode(path) === ino) return;
        clearInterval(timer);
        void ask(path).then(onLost);
      }, intervalMs);
      timer.unref();
    },
    async release() {
      clearInterval(timer);
      // closing a listening unix socket makes libuv unlink its path: only while it is ours
      if (inode(path) !== ino) return; // the process exits soon; its socket goes with it
      await new Promise<void>((r) => server.close(() => r()));
      unlinkQuietly(path);
    },
  };
}

function bind(path: string, me: Holder): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer((c) => {
      c.on('error', () => undefined);
      c.end(`${JSON.stringify(me)}\n`);
    });
    server.once('error', reject);
    server.listen(path, () => {
      server.removeListener('error', reject);
      server.on('error', () => undefined);
      server.unref(); // the lock never keeps the process alive by itself
      resolve(server);
    });
  });
}

/**
 * Who holds the socket at path; undefined only when nothing listens there (the connection is
 * refused or there is no file): a holder that accepts and does not answer is alive.
 */
function ask(path: string): Promise<Holder | undefined> {
  return new Promise((resolve) => {
    let text = '';
    let connected = false;
    const c = createConnection(path);
    const unknown = (): Holder => ({ pid: 0, mode: 'unknown' });
    const done = (h: Holder | undefined): void => {
      clearTimeout(timer);
      c.destroy();
      resolve(h);
    };
    const timer = setTimeout(() => done(connected ? unknown() : undefined), 2000);
    c.setEncoding('utf8');
    c.on('connect', () => {
      connected = true;
    });
    c.on('data', (d: string) => {
      text += d;
      if (text.length > 4096) done(unknown());
    });
    c.on('end', () => {
      try {
        const h = JSON.parse(text) as Partial<Holder>;
        done({ pid: Number(h.pid) || 0, mode: String(h.mode ?? 'unknown') });
      } catch {
        done(unknown()); // something listens there, and is not us
      }
    });
    c.on('error', () => done(connected ? unknown() : undefined));
  });
}

function alreadyRunning(path: string, other: Holder): NetqosError {
  const who = other.pid > 0 ? `pid ${other.pid}, ${other.mode}` : 'another process';
  return new NetqosError(
    'ALREADY_RUNNING',
    `another netqos NRI plugin already shapes this node (${who}, holding ${path}); only one may run: stop it first, or use either the pre-installed plugin or the daemon, not both`,
  );
}

/** which socket file is at path: its inode and change time (an inode number alone is reused at once) */
function inode(path: string): string | undefined {
  try {
    const st = statSync(path, { bigint: true });
    return st.isSocket() ? `${st.ino}:${st.ctimeNs}` : undefined;
  } catch {
    return undefined;
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already
  }
}
