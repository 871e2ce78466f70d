/**
 * The OCI hook: createRuntime shapes the container's namespace from its annotations, poststop
 * removes what is left. Errors become exactly one stderr line and the exit code here.
 *
 * createRuntime runs after the runtime configured the network, with the container's host PID
 * (measured with podman + crun/runc); a non-zero exit fails the container (podman exits 126).
 * poststop under podman comes after the network teardown, with no pid and an empty
 * environment: the namespace is usually gone, and with it everything we made.
 */
import { parseAnnotations } from '../domain/annotations.js';
import type { Config } from '../domain/config.js';
import { isNetqosError, NetqosError, oneLine } from '../domain/errors.js';
import { applyQos, removeQos } from '../engine.js';
import { assertNotHost, netnsExists, netnsIdentity, type NetnsRef } from '../kernel/netns.js';
import type { Logger } from '../log.js';
import { isPodAppContainer, netnsInUse } from './owner.js';
import { bundleNetnsPath, stageOf, type HookState } from './state.js';

export interface HookOutcome {
  exitCode: 0 | 1;
  /** the one line for stderr, when there is something to say */
  line?: string;
}

export async function runHook(state: HookState, config: Config, log: Logger, argvStage?: string): Promise<HookOutcome> {
  const stage = stageOf(state, argvStage);
  const ctx = { id: state.id.slice(0, 12), stage };
  try {
    return stage === 'createRuntime' ? await create(state, config, log, ctx) : await stop(state, log, ctx);
  } catch (e) {
    const line = `netqos: container ${ctx.id}: ${oneLine(e)}`;
    const refuse = stage === 'createRuntime' && (config.onError === 'fail' || !isNetqosError(e) || e.code !== 'INVALID_ANNOTATION');
    log.error({ ...ctx, code: isNetqosError(e) ? e.code : 'INTERNAL', err: oneLine(e) }, refuse ? 'refused' : 'failed');
    if (refuse) return { exitCode: 1, line };
    return { exitCode: 0, line: `${line} (started unshaped: onError is "warn")` };
  }
}

async function create(state: HookState, config: Config, log: Logger, ctx: object): Promise<HookOutcome> {
  let spec;
  try {
    spec = parseAnnotations(state.annotations);
  } catch (e) {
    if (config.onError === 'warn' && isNetqosError(e)) {
      log.warn({ ...ctx, err: oneLine(e) }, 'bad annotation: started unshaped');
      return { exitCode: 0, line: `netqos: container ${state.id.slice(0, 12)}: ${oneLine(e)} (started unshaped: onError is "warn")` };
    }
    throw e;
  }
  if (!spec) return { exitCode: 0 };
  if (state.pid === undefined) throw new NetqosError('INVALID_ARGUMENT', 'createRuntime state has no pid');
  // the runtime's named namespace when the bundle names one and it is the PID's (cheaper to
  // enter, see kernel/netns.ts); otherwise the PID's
  const named = bundleNetnsPath(state.bundle);
  const byPid = netnsIdentity(`/proc/${state.pid}/ns/net`);
  const ref: NetnsRef = named && !named.startsWith('/proc/') && byPid !== undefined && netnsIdentity(named) === byPid ? { path: named } : { pid: state.pid };
  try {
    assertNotHost(ref);
  } catch (e) {
    if (isNetqosError(e) && e.code === 'HOST_NETNS') {
      log.warn({ ...ctx }, 'host network: not shaped');
      return { exitCode: 0, line: `netqos: container ${state.id.slice(0, 12)} uses the host network: not shaped` };
    }
    throw e;
  }
  const started = performance.now();
  const res = await applyQos(ref, spec, { defaultLatencyUs: config.queueLatencyUs, timeoutMs: config.hookTimeoutMs });
  log.info({ ...ctx, shaped: res.shaped, ms: Math.round(performance.now() - started) }, 'shaped');
  return { exitCode: 0 };
}

async function stop(state: HookState, log: Logger, ctx: object): Promise<HookOutcome> {
  if (isPodAppContainer(state.annotations)) {
    log.debug(ctx, 'app container of a pod: the pod keeps its shaping');
    return { exitCode: 0 };
  }
  // Only a named namespace (/run/netns/..., pinned by the runtime) can outlive the container.
  // A /proc/<pid>/ns/net path names another container's namespace (a pod's infra), and at
  // poststop that PID may already belong to an unrelated process: never act on it.
  const path = bundleNetnsPath(state.bundle);
  if (path === undefined || path.startsWith('/proc/')) return { exitCode: 0 };
  const ref: NetnsRef = { path };
  if (!netnsExists(ref)) {
    log.debug({ ...ctx }, 'namespace gone: nothing left to remove');
    return { exitCode: 0 };
  }
  if (netnsInUse(path)) {
    log.debug({ ...ctx, netns: path }, 'namespace still in use by the pod: shaping kept');
    return { exitCode: 0 };
  }
  try {
    assertNotHost(ref);
  } catch {
    return { exitCode: 0 }; // never shaped, nothing to remove
  }
  const res = await removeQos(ref);
  log.info({ ...ctx, removed: res.removed }, 'unshaped');
  return { exitCode: 0 };
}
