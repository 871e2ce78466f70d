/**
 * Serves the local API (api-protocol.ts) on a unix socket. Root only, by the file system: the
 * socket is created 0600 (under umask 0177, then chmod, so it is never open to others for a
 * moment) in a directory that must be ours and not writable by anyone else (created 0700).
 * Node cannot read a unix peer's credentials (SO_PEERCRED), so these permissions are the whole
 * access check: whoever can connect is root (or holds CAP_DAC_OVERRIDE).
 *
 * The daemon holds the node lock (lock.ts) before it serves, so a socket file already at the
 * path is a dead daemon's and is replaced.
 */
import { chmodSync, mkdirSync, statSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import { isNetqosError, NetqosError, oneLine } from '../domain/errors.js';
import type { QosUpdate } from '../domain/update.js';
import type { Logger } from '../log.js';
import { httpStatus, MAX_BODY_BYTES, parseUpdateRequest, type ApiError, type PodView } from './api-protocol.js';

export interface ApiHandler {
  podViews(): PodView[];
  update(selector: string, update: QosUpdate): Promise<PodView>;
}

export interface ApiServer {
  readonly path: string;
  close(): Promise<void>;
}

export async function startApi(path: string, handler: ApiHandler, log: Logger): Promise<ApiServer> {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = statSync(dir);
  const uid = process.getuid?.() ?? 0;
  if (st.uid !== uid || (st.mode & 0o022) !== 0) {
    throw new NetqosError(
      'INVALID_ARGUMENT',
      `cannot serve the API in ${dir}: the directory must belong to uid ${uid} and be writable by it alone (it is uid ${st.uid}, mode ${(st.mode & 0o777).toString(8)}); use --api with a private directory`,
    );
  }
  try {
    unlinkSync(path); // a dead daemon's socket: we hold the node lock
  } catch {
    // none
  }
  const server = createServer((req, res) => void serve(req, res, handler, log));
  const umask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(umask);
  }
  chmodSync(path, 0o600);
  server.on('error', (e) => log.error({ err: oneLine(e) }, 'API server error'));
  server.unref(); // the runtime connection keeps the daemon alive, not the API
  return {
    path,
    close: () => closeServer(server),
  };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

async function serve(req: IncomingMessage, res: ServerResponse, handler: ApiHandler, log: Logger): Promise<void> {
  try {
    const url = req.url ?? '';
    if (req.method === 'GET' && url === '/v1/pods') return reply(res, 200, { pods: handler.podViews() });
    if (req.method === 'POST' && url === '/v1/update') {
      const body = await readJson(req);
      const { pod, update } = parseUpdateRequest(body);
      const view = await handler.update(pod, update);
      return reply(res, 200, { pod: view });
    }
    throw new NetqosError('NOT_FOUND', `no such API call: ${req.method ?? '?'} ${url.slice(0, 100)}; the calls are GET /v1/pods and POST /v1/update`);
  } catch (e) {
    const err: ApiError = isNetqosError(e)
      ? { error: { code: e.code, message: oneLine(e) } }
      : { error: { code: 'KERNEL', message: `internal error: ${oneLine(e)}` } };
    if (!isNetqosError(e) || httpStatus(e.code) >= 500) log.error({ err: err.error.message }, 'API call failed');
    reply(res, isNetqosError(e) ? httpStatus(e.code) : 500, err);
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new NetqosError('INVALID_ARGUMENT', `the request body is larger than ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('error', reject);
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (e) {
        reject(new NetqosError('INVALID_ARGUMENT', `the request body is not JSON (${oneLine(e)}); send e.g. {"pod":"default/web","egress":"20M"}`));
      }
    });
  });
}
