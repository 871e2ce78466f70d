/**
 * The CLI's side of the NRI daemon's local API (src/nri/api-protocol.ts): HTTP over the unix
 * socket, one request each. `undefined` means no daemon answers there (no socket, or nothing
 * listening): the CLI then acts on the namespace itself where it can.
 */
import { request } from 'node:http';
import { NetqosError, type ErrorCode } from '../domain/errors.js';
import { DEFAULT_API_SOCKET, isApiError, type PodView } from '../nri/api-protocol.js';
import { stringFlag, type ParsedArgs } from './args.js';

const TIMEOUT_MS = 15_000;

/** --api, else $NETQOS_API, else /run/netqos/api.sock */
export const apiPath = (args: ParsedArgs): string => stringFlag(args, 'api') ?? (process.env.NETQOS_API || DEFAULT_API_SOCKET);

/** The daemon's answer, or undefined when no daemon listens at `path`. */
export function callApi(path: string, method: 'GET' | 'POST', url: string, body?: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        socketPath: path,
        method,
        path: url,
        timeout: TIMEOUT_MS,
        headers: text === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => reject(lost(path, e)));
        res.on('end', () => {
          let json: unknown;
          try {
            json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            reject(new NetqosError('PROTOCOL', `the netqos daemon at ${path} answered HTTP ${res.statusCode ?? '?'} with something that is not JSON`));
            return;
          }
          if (isApiError(json)) reject(new NetqosError(json.error.code as ErrorCode, json.error.message));
          else resolve(json);
        });
      },
    );
    req.on('timeout', () => req.destroy(new NetqosError('TIMEOUT', `the netqos daemon at ${path} did not answer within ${TIMEOUT_MS / 1000} s`)));
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') resolve(undefined);
      else if (e.code === 'EACCES') reject(new NetqosError('INVALID_ARGUMENT', `cannot connect to the netqos daemon at ${path}: permission denied; run as root`));
      else reject(e instanceof NetqosError ? e : lost(path, e));
    });
    req.end(text);
  });
}

function lost(path: string, e: Error): NetqosError {
  return new NetqosError('PROTOCOL', `talking to the netqos daemon at ${path} failed: ${e.message}`, { cause: e });
}

export async function listPods(path: string): Promise<PodView[] | undefined> {
  const r = (await callApi(path, 'GET', '/v1/pods')) as { pods?: PodView[] } | undefined;
  return r === undefined ? undefined : (r.pods ?? []);
}

export async function updatePod(path: string, body: Record<string, string>): Promise<PodView | undefined> {
  const r = (await callApi(path, 'POST', '/v1/update', body)) as { pod?: PodView } | undefined;
  if (r === undefined) return undefined;
  if (!r.pod) throw new NetqosError('PROTOCOL', `the netqos daemon at ${path} answered the update without the pod`);
  return r.pod;
}

export function noDaemon(path: string): NetqosError {
  return new NetqosError('NOT_FOUND', `no netqos NRI daemon answers at ${path}; start netqos-nri, or give --api with its socket`);
}
