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
import { closeTools, openTools, type NetnsTools } from '../kernel/tools-session.js';
import type { Logger } from '../log.js';
import { isPodAppContainer, netnsInUse } from './owner.js';
import { bundleNetnsPath, stageOf, type HookState } from './state.js';

export interface HookOutcome {
  exitCode: 0 | 1;
  /** the one line for stderr, when there is something to say */
  line?: string;
}

/** The container's namespace, opened before the config and annotations are read. */
export interface EarlyTarget {
  ref: NetnsRef;
  tools: NetnsTools;
}

/**
 * At createRuntime, starts ip and tc in the container's namespace first thing: spawning them
 * blocks Node for about 6 ms, and their start-up (exec, first netlink dump) then overlaps with
 * reading the config and the annotations instead of following it. Nothing is changed until the
 * annotations are valid; a hook that ends up not shaping just closes them.
 */
export function openEarly(state: HookState, argvStage?: string): EarlyTarget | undefined {
  if (stageOf(state, argvStage) !== 'createRuntime' || state.pid === undefined) return undefined;
  const ref = containerRef(state.pid, state.bundle);
  try {
    assertNotHost(ref);
  } catch {
    return undefined; // create() reports it
  }
  return { ref, tools: openTools(ref) };
}

export async function runHook(state: HookState, config: Config, log: Logger, argvStage?: string, early?: EarlyTarget): Promise<HookOutcome> {
  const stage = stageOf(state, argvStage);
  const ctx = { id: state.id.slice(0, 12), stage };
  try {
    if (stage !== 'createRuntime') return await stop(state, log, ctx);
    const unused = { early };
    try {
      return await create(state, config, log, ctx, unused);
    } finally {
      if (unused.early) await closeTools(unused.early.tools);
    }
  } catch (e) {
    const line = `netqos: container ${ctx.id}: ${oneLine(e)}`;
    const refuse = stage === 'createRuntime' && (config.onError === 'fail' || !isNetqosError(e) || e.code !== 'INVALID_ANNOTATION');
    log.error({ ...ctx, code: isNetqosError(e) ? e.code : 'INTERNAL', err: oneLine(e) }, refuse ? 'refused' : 'failed');
    if (refuse) return { exitCode: 1, line };
    return { exitCode: 0, line: `${line} (started unshaped: onError is "warn")` };
  }
}

/**
 * The runtime's named namespace when the bundle names one and it is the PID's (cheaper to
 * enter, see kernel/netns.ts); otherwise the PID's.
 */
function containerRef(pid: number, bundle: string): NetnsRef {
  const named = bundleNetnsPath(bundle);
  const byPid = netnsIdentity(`/proc/${pid}/ns/net`);
  return named && !named.startsWith('/proc/') && byPid !== undefined && netnsIdentity(named) === byPid ? { path: named } : { pid };
}

async function create(state: HookState, config: Config, log: Logger, ctx: object, unused: { early?: EarlyTarget }): Promise<HookOutcome> {
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
  const ref = unused.early?.ref ?? containerRef(state.pid, state.bundle);
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
  const tools = unused.early?.tools;
  unused.early = undefined; // applyQos owns the sessions now: it ends them, also on failure
  const res = await applyQos(ref, spec, { defaultLatencyUs: config.queueLatencyUs, timeoutMs: config.hookTimeoutMs, tools });
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
