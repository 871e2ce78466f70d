/**
 * The NRI daemon's local API: HTTP/1.1 over a unix socket (root only: the socket is 0600 in a
 * 0700 directory), JSON in and out. Shared by the server (api-server.ts) and the CLI's client.
 * Pure.
 *
 *   GET  /v1/pods                    -> 200 { "pods": [PodView, ...] }
 *   POST /v1/update  UpdateRequest   -> 200 { "pod": PodView }
 *   any error                        -> 4xx/5xx { "error": { "code": "NOT_FOUND", "message": "..." } }
 *
 * UpdateRequest: { "pod": "<namespace>/<name>" or a sandbox id (or a unique prefix of at least
 * 8 characters), and any of "egress", "ingress", "egress-burst", "ingress-burst",
 * "queue-latency" as strings, with the meaning and limits of the CLI flags of the same name }.
 */
import { NetqosError, type ErrorCode } from '../domain/errors.js';
import type { QosSpec } from '../domain/spec.js';
import { readUpdate, UPDATE_FIELDS, type QosUpdate, type UpdateField } from '../domain/update.js';

export const DEFAULT_API_SOCKET = '/run/netqos/api.sock';
export const DEFAULT_STATE_DIR = '/var/lib/netqos';
export const OVERRIDES_FILE = 'overrides.json';
/** a request body larger than this is refused: an update is a few hundred bytes */
export const MAX_BODY_BYTES = 64 * 1024;

/** What the daemon tells about a pod it shapes. */
export interface PodView {
  id: string;
  namespace: string;
  name: string;
  /** where its network namespace is: "netns /var/run/netns/cni-..." or "pid 1234" */
  netns: string;
  /** dev:inode of the network namespace (the CLI matches --pid / --netns targets with it) */
  identity: string;
  /** what the pod's annotations ask for */
  annotated: QosSpec;
  /** the updates made through the API since the pod started, merged (absent: none) */
  override?: QosUpdate;
  /** the annotations with the override on top: what is in force */
  spec: QosSpec;
}

export interface UpdateRequest {
  pod: string;
  update: QosUpdate;
}

const label = (f: UpdateField): string => `field "${f}"`;

/** The body of POST /v1/update, checked; INVALID_ARGUMENT names the field otherwise. */
export function parseUpdateRequest(body: unknown): UpdateRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new NetqosError('INVALID_ARGUMENT', 'the update request is not a JSON object; send e.g. {"pod":"default/web","egress":"20M"}');
  }
  const b = body as Record<string, unknown>;
  const known = new Set<string>(['pod', ...UPDATE_FIELDS]);
  const unknown = Object.keys(b).find((k) => !known.has(k));
  if (unknown !== undefined) {
    throw new NetqosError('INVALID_ARGUMENT', `unknown field ${JSON.stringify(unknown)} in the update request; the fields are pod, ${UPDATE_FIELDS.join(', ')}`);
  }
  const pod = b.pod;
  if (typeof pod !== 'string' || pod === '') {
    throw new NetqosError('INVALID_ARGUMENT', 'field "pod" is missing or not a string; give "<namespace>/<name>" or a sandbox id, e.g. "default/web"');
  }
  const fields: Partial<Record<UpdateField, string>> = {};
  for (const f of UPDATE_FIELDS) {
    const v = b[f];
    if (v === undefined) continue;
    if (typeof v !== 'string') throw new NetqosError('INVALID_ARGUMENT', `invalid ${label(f)} ${JSON.stringify(v)}: not a string; send quantities as strings, e.g. "20M"`);
    fields[f] = v;
  }
  return { pod, update: readUpdate(fields, label) };
}

/** How a pod is named: "<namespace>/<name>", or its sandbox id or a prefix of it. */
export type PodSelector = { namespace: string; name: string } | { idPrefix: string };

export function parsePodSelector(text: string): PodSelector {
  const slash = text.indexOf('/');
  if (slash >= 0) {
    const namespace = text.slice(0, slash);
    const name = text.slice(slash + 1);
    if (namespace === '' || name === '' || name.includes('/')) {
      throw new NetqosError('INVALID_ARGUMENT', `pod ${JSON.stringify(text)} is not "<namespace>/<name>"; e.g. "default/web"`);
    }
    return { namespace, name };
  }
  if (!/^[0-9a-f]{8,64}$/.test(text)) {
    throw new NetqosError('INVALID_ARGUMENT', `pod ${JSON.stringify(text)} is neither "<namespace>/<name>" nor a sandbox id (8 to 64 hex digits)`);
  }
  return { idPrefix: text };
}

/** The one pod the selector names, among `pods`; NOT_FOUND / INVALID_ARGUMENT otherwise. */
export function selectPod<T extends { id: string; namespace: string; name: string }>(pods: readonly T[], text: string): T {
  const sel = parsePodSelector(text);
  const found = 'idPrefix' in sel ? pods.filter((p) => p.id.startsWith(sel.idPrefix)) : pods.filter((p) => p.namespace === sel.namespace && p.name === sel.name);
  if (found.length === 1) return found[0]!;
  if (found.length === 0) throw new NetqosError('NOT_FOUND', `pod ${text}: the netqos NRI daemon does not shape such a pod (see netqos pods)`);
  throw new NetqosError('INVALID_ARGUMENT', `pod ${text} names ${found.length} pods; give more of the sandbox id`);
}

const STATUS: Partial<Record<ErrorCode, number>> = { INVALID_ARGUMENT: 400, NOT_FOUND: 404, HOST_NETNS: 409 };
export const httpStatus = (code: ErrorCode): number => STATUS[code] ?? 500;

export interface ApiError {
  error: { code: ErrorCode; message: string };
}

export const isApiError = (v: unknown): v is ApiError =>
  typeof v === 'object' && v !== null && typeof (v as ApiError).error?.message === 'string' && typeof (v as ApiError).error?.code === 'string';
