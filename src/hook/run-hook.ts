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
import { applyQos, releaseOrphanVfs, removeNodeShaping, removeQos, sriovFromConfig, type HostSide } from '../engine.js';
import { assertNotHost, netnsExists, netnsIdentity, netnsPath, type NetnsRef } from '../kernel/netns.js';
import { closeTools, openTools, type NetnsTools } from '../kernel/tools-session.js';
import type { Logger } from '../log.js';
import { hookIdentity, isPodAppContainer, netnsInUse } from './owner.js';
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
 * Starts ip and tc in the container's namespace first thing: spawning them blocks Node for
 * about 6 ms, and their start-up (exec, first netlink dump) then overlaps with reading the
 * config and the annotations instead of following it. Nothing is changed until create() or
 * stop() decided to act; a hook that ends up not acting just closes them. Only where the
 * hook is likely to act: createRuntime with a pid, poststop with a pinned namespace that
 * still exists (podman's usual poststop, namespace gone, starts nothing).
 */
export function openEarly(state: HookState, argvStage?: string): EarlyTarget | undefined {
  const create = stageOf(state, argvStage) === 'createRuntime';
  const ref = create ? createRef(state) : stopRef(state);
  if (ref === undefined) return undefined;
  try {
    assertNotHost(ref);
  } catch {
    return undefined; // create() reports it; stop() has nothing to do
  }
  // a teardown starts tc once ip is deleting the ifb (engine.ts, removeQos)
  return { ref, tools: openTools(ref, undefined, { tcOnFirstUse: !create }) };
}

const createRef = (state: HookState): NetnsRef | undefined => (state.pid === undefined ? undefined : containerRef(state.pid, state.bundle));

/**
 * Only a named namespace (/run/netns/..., pinned by the runtime) can outlive the container.
 * A /proc/<pid>/ns/net path names another container's namespace (a pod's infra), and at
 * poststop that PID may already belong to an unrelated process: never act on it. An app
 * container of a pod never removes the pod's shaping.
 */
function stopRef(state: HookState): NetnsRef | undefined {
  if (isPodAppContainer(state.annotations)) return undefined;
  const path = bundleNetnsPath(state.bundle);
  if (path === undefined || path.startsWith('/proc/')) return undefined;
  return { path };
}

export async function runHook(state: HookState, config: Config, log: Logger, argvStage?: string, early?: EarlyTarget): Promise<HookOutcome> {
  const stage = stageOf(state, argvStage);
  const ctx = { id: state.id.slice(0, 12), stage };
  try {
    const unused = { early };
    try {
      if (stage === 'createRuntime') return await create(state, config, log, ctx, unused);
      return config.vethShaping === 'host' ? await stopHostSide(state, log, ctx, unused) : await stop(state, config, log, ctx, unused);
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
  // hrtime, not performance.now(): the global `performance` loads node:perf_hooks on first use,
  // 0.8 ms of CPU in the hook (paired A/B of createRuntime runs, median of 60)
  const started = process.hrtime.bigint();
  const tools = unused.early?.tools;
  unused.early = undefined; // applyQos owns the sessions now: it ends them, also on failure
  const hostSide = config.vethShaping === 'host' ? { identity: hookIdentity(state) } : undefined;
  const res = await applyQos(ref, spec, { defaultLatencyUs: config.queueLatencyUs, timeoutMs: config.hookTimeoutMs, tools, sriov: sriovFromConfig(config), hostSide });
  log.info({ ...ctx, shaped: res.shaped, ms: Math.round(Number(process.hrtime.bigint() - started) / 1e6) }, 'shaped');
  if (res.vfRates?.length) log.info({ ...ctx, vfRates: res.vfRates }, 'SR-IOV PF max_tx_rate set');
  for (const w of res.warnings ?? []) log.warn({ ...ctx }, w);
  return { exitCode: 0 };
}

async function stop(state: HookState, config: Config, log: Logger, ctx: object, unused: { early?: EarlyTarget }): Promise<HookOutcome> {
  const sriov = sriovFromConfig(config);
  const ref = unused.early?.ref ?? stopRef(state);
  if (ref === undefined) {
    log.debug(ctx, 'no namespace of its own to clean (an app container of a pod, or not pinned)');
    return { exitCode: 0 };
  }
  if (!netnsExists(ref)) {
    log.debug({ ...ctx }, 'namespace gone: nothing left to remove');
    const vfRates = await releaseOrphanVfs({ sriov });
    if (vfRates.length > 0) log.info({ ...ctx, vfRates }, 'SR-IOV PF max_tx_rate restored');
    return { exitCode: 0 };
  }
  if (keptForPod(ref, unused, log, ctx)) return { exitCode: 0 };
  try {
    assertNotHost(ref);
  } catch {
    return { exitCode: 0 }; // never shaped, nothing to remove
  }
  const tools = unused.early?.tools;
  unused.early = undefined; // removeQos owns the sessions now
  const res = await removeQos(ref, { tools, sriov });
  log.info({ ...ctx, removed: res.removed }, 'unshaped');
  return { exitCode: 0 };
}

/** true (and logged) while processes other than the hook's own ip and tc live in the namespace: a pod keeps its shaping */
function keptForPod(ref: NetnsRef, unused: { early?: EarlyTarget }, log: Logger, ctx: object): boolean {
  const ours = unused.early ? [unused.early.tools.ip.pid, unused.early.tools.tc.pid] : [];
  if (!netnsInUse(netnsPath(ref), ours)) return false;
  log.debug({ ...ctx, netns: netnsPath(ref) }, 'namespace still in use by the pod: shaping kept');
  return true;
}

/**
 * poststop with vethShaping "host": the node's objects outlive the container's namespace (an
 * ifb on the node is not deleted with it), so they are removed by identity even when the
 * namespace is gone, as under podman. Kept while the namespace still has processes (a pod), and
 * never by an app container of a CRI pod (the sandbox's poststop does it, under the same
 * identity). A podman pod member (its namespace a /proc path) leaves them to the pod's end and
 * `netqos gc`: its stop must not unshape the pod.
 */
async function stopHostSide(state: HookState, log: Logger, ctx: object, unused: { early?: EarlyTarget }): Promise<HookOutcome> {
  if (isPodAppContainer(state.annotations)) {
    log.debug(ctx, 'an app container of a pod: the sandbox removes the node-side shaping');
    return { exitCode: 0 };
  }
  const path = bundleNetnsPath(state.bundle);
  if (path?.startsWith('/proc/')) {
    log.debug(ctx, 'a member of another container\'s namespace: node-side shaping kept (netqos gc removes it once the veth is gone)');
    return { exitCode: 0 };
  }
  const hostSide: HostSide = { identity: hookIdentity(state) };
  const ref = unused.early?.ref ?? (path !== undefined ? { path } : undefined);
  if (ref !== undefined && netnsExists(ref)) {
    if (keptForPod(ref, unused, log, ctx)) return { exitCode: 0 };
    const tools = unused.early?.tools;
    unused.early = undefined;
    const res = await removeQos(ref, { tools, hostSide });
    log.info({ ...ctx, removed: res.removed }, 'unshaped (node side too)');
    return { exitCode: 0 };
  }
  const res = await removeNodeShaping(hostSide);
  log.info({ ...ctx, removed: res.removed }, res.removed > 0 ? 'namespace gone: node-side shaping removed' : 'namespace gone: nothing left on the node');
  return { exitCode: 0 };
}
