/**
 * The OCI state a runtime writes to a hook's stdin, and which stage it belongs to. One
 * executable serves createRuntime and poststop (a hooks.d file passes the same argv to both),
 * so the stage comes from the state: poststop has status "stopped" and (under podman) no pid.
 * Measured: crun says "created" and runc "creating" at createRuntime, both with the host PID.
 */
import { readFileSync } from 'node:fs';
import { number, object, optional, record, string } from 'zod/mini';
import { NetqosError } from '../domain/errors.js';

export type Stage = 'createRuntime' | 'poststop';

export interface HookState {
  id: string;
  status: string;
  pid?: number;
  bundle: string;
  annotations: Record<string, string>;
}

const STATE = object({
  id: string(),
  status: string(),
  pid: optional(number()),
  bundle: string(),
  annotations: optional(record(string(), string())),
});

export function parseState(text: string): HookState {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new NetqosError('INVALID_ARGUMENT', `hook stdin is not the OCI state JSON (got ${JSON.stringify(text.slice(0, 40))}); run netqos-hook from a hooks.d entry`);
  }
  const r = STATE.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new NetqosError('INVALID_ARGUMENT', `hook stdin: OCI state field ${issue?.path.join('.') || '(root)'} ${issue?.message ?? 'is invalid'}; expected {id, status, pid, bundle, annotations}`);
  }
  const { pid, annotations, ...rest } = r.data;
  return { ...rest, annotations: annotations ?? {}, ...(pid !== undefined && pid > 0 ? { pid } : {}) };
}

export function stageOf(s: HookState, argvStage?: string): Stage {
  if (argvStage === 'createRuntime' || argvStage === 'poststop') return argvStage;
  return s.status === 'stopped' || s.pid === undefined ? 'poststop' : 'createRuntime';
}

/** The network namespace path the container was configured with (bundle/config.json). */
export function bundleNetnsPath(bundle: string): string | undefined {
  try {
    const cfg = JSON.parse(readFileSync(`${bundle}/config.json`, 'utf8')) as {
      linux?: { namespaces?: { type?: string; path?: string }[] };
    };
    return cfg.linux?.namespaces?.find((n) => n.type === 'network')?.path || undefined;
  } catch {
    return undefined;
  }
}
