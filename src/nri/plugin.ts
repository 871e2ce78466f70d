/**
 * The netqos NRI plugin: shapes a pod's network namespace from its annotations when the
 * runtime starts the pod, removes the shaping when it stops, and converges after a restart.
 *
 * - RunPodSandbox: parse (before any I/O), refuse the node's namespace (a host-network pod is
 *   "not shaped", not an error), apply, and only then reply: CNI has set the namespace up by
 *   then, and the pod's containers start after. A bad annotation fails the pod (containerd:
 *   "NRI RunPodSandbox failed: ... desc = netqos: pod ns/name (id): invalid annotation ...")
 *   unless the config says onError "warn".
 * - StopPodSandbox: remove while the namespace still exists (containerd removes it after).
 *   containerd 1.7 sends neither pid nor namespaces on stop and remove: the namespace comes from
 *   what RunPodSandbox (or Synchronize) recorded, and is only acted on while it is still the
 *   same namespace (dev:inode), so a reused pid or path is never touched.
 * - RemovePodSandbox: remove whatever is left, forget the pod.
 * - Synchronize: every pod the runtime lists is re-applied (applying is idempotent and repairs
 *   what is missing) in the background, so the reply stays well inside the runtime's timeout.
 *
 * - update (the local API, api-server.ts): changes the limits of a pod in place and keeps the
 *   change as an override (overrides.ts), applied on top of the annotations whenever the pod is
 *   shaped again, also by a restarted daemon; the override ends with the pod.
 *
 * Operations on one pod run one after another, in the order they were asked for.
 */
import { parseAnnotations } from '../domain/annotations.js';
import type { Config } from '../domain/config.js';
import { isNetqosError, NetqosError, oneLine } from '../domain/errors.js';
import type { QosSpec } from '../domain/spec.js';
import { applyUpdate, mergeUpdates, type QosUpdate } from '../domain/update.js';
import type { HostSide } from '../engine.js';
import { describe, type NetnsRef } from '../kernel/netns.js';
import type { Logger } from '../log.js';
import { realEngine, type PodEngine } from './pod-engine.js';
import { releaseOrphanVfs, sriovFromConfig } from '../engine.js';
import { podLabel, podNetnsRef } from './pod-netns.js';
import { selectPod, type PodView } from './api-protocol.js';
import type { OverrideRecord } from './overrides.js';
import type { ConfigureRequest, PodSandbox } from './proto.js';
import type { CallInfo, PluginHandlers } from './stub.js';

/** what the plugin remembers of a pod it shaped */
export interface PodRecord {
  label: string;
  namespace: string;
  name: string;
  ref: NetnsRef;
  /** dev:inode of the namespace when it was shaped */
  identity: string;
  /** what the annotations ask for */
  annotated: QosSpec;
  /** what is in force: the annotations with the pod's override on top */
  spec: QosSpec;
}

/** where overrides are kept (overrides.ts's OverrideStore; tests may keep them in memory) */
export interface Overrides {
  get(id: string): OverrideRecord | undefined;
  set(id: string, rec: OverrideRecord): void;
  delete(id: string): void;
  retain(ids: ReadonlySet<string>): void;
}

export interface PluginOptions {
  /** the current config (it may change with each Configure) */
  config: () => Config;
  log: Logger;
  engine?: PodEngine;
  /** told about each Configure (the daemon takes the config string from it) */
  configure?: (req: ConfigureRequest) => void;
  /** how many pods Synchronize re-applies at once; default 4 */
  syncConcurrency?: number;
  /** the updates made through the API; default: kept in memory only */
  overrides?: Overrides;
}

function memoryOverrides(): Overrides {
  const m = new Map<string, OverrideRecord>();
  return {
    get: (id) => m.get(id),
    set: (id, rec) => void m.set(id, rec),
    delete: (id) => void m.delete(id),
    retain: (ids) => {
      for (const id of [...m.keys()]) if (!ids.has(id)) m.delete(id);
    },
  };
}

/** the share of the runtime's request timeout one child process (ip, tc) may take */
const CHILD_SHARE = 0.6;
const BACKGROUND_CHILD_TIMEOUT_MS = 5000;

export class NetqosPlugin implements PluginHandlers {
  private readonly pods = new Map<string, PodRecord>();
  private readonly queues = new Map<string, Promise<void>>();
  private background: Promise<void> = Promise.resolve();
  private readonly engine: PodEngine;
  private readonly overrides: Overrides;
  /** per pod, how many times it was stopped or removed: a re-apply queued before that is void */
  private readonly ends = new Map<string, number>();

  constructor(private readonly opts: PluginOptions) {
    this.engine = opts.engine ?? realEngine;
    this.overrides = opts.overrides ?? memoryOverrides();
  }

  /** the pods currently shaped, by sandbox id (a copy) */
  tracked(): Map<string, PodRecord> {
    return new Map(this.pods);
  }

  /** resolves once every queued operation and the last Synchronize's re-apply are done */
  async idle(): Promise<void> {
    for (;;) {
      const pending = [this.background, ...this.queues.values()];
      await Promise.all(pending);
      if (this.queues.size === 0 && pending[0] === this.background) return;
    }
  }

  configure(req: ConfigureRequest): void {
    this.opts.configure?.(req);
  }

  async runPodSandbox(pod: PodSandbox, call: CallInfo): Promise<void> {
    const label = podLabel(pod);
    const log = this.opts.log;
    const config = this.opts.config();
    let spec: QosSpec | null;
    try {
      spec = parseAnnotations(pod.annotations);
    } catch (e) {
      if (config.onError === 'warn' && isNetqosError(e)) {
        log.warn({ pod: label, err: oneLine(e) }, 'bad annotation: started unshaped (onError is "warn")');
        return;
      }
      throw forPod(label, e);
    }
    if (spec === null) return; // asks for nothing: never touched
    const ref = this.shapeable(pod, label);
    if (ref === undefined) return;
    const annotated = spec;
    const wanted = this.effective(pod.id, label, annotated);
    const timeoutMs = call.timeoutMs === undefined ? BACKGROUND_CHILD_TIMEOUT_MS : Math.max(100, call.timeoutMs * CHILD_SHARE);
    await this.serial(pod.id, async () => {
      const started = performance.now();
      const res = await this.engine
        .apply(ref, wanted, { defaultLatencyUs: config.queueLatencyUs, timeoutMs, sriov: sriovFromConfig(config), hostSide: this.hostSide(pod.id) })
        .catch((e: unknown) => Promise.reject(forPod(label, e)));
      if (call.signal.aborted) {
        // the runtime was already told this pod failed: it will not be started, undo
        await this.engine.remove(ref, { sriov: sriovFromConfig(config), hostSide: this.hostSide(pod.id) }).catch(() => undefined);
        log.warn({ pod: label }, 'shaped after the runtime gave up on the pod: removed again');
        return;
      }
      this.remember(pod.id, { label, namespace: pod.namespace, name: pod.name, ref, annotated, spec: wanted, identity: this.engine.identity(ref) ?? '' });
      log.info({ pod: label, netns: describe(ref), shaped: res.shaped.map(summary), ms: Math.round(performance.now() - started) }, 'shaped');
    });
  }

  async stopPodSandbox(pod: PodSandbox): Promise<void> {
    this.ends.set(pod.id, (this.ends.get(pod.id) ?? 0) + 1);
    await this.serial(pod.id, async () => {
      await this.unshape(pod, 'stop');
      this.forgetOverride(pod.id);
    });
  }

  async removePodSandbox(pod: PodSandbox): Promise<void> {
    this.ends.set(pod.id, (this.ends.get(pod.id) ?? 0) + 1);
    await this.serial(pod.id, async () => {
      await this.unshape(pod, 'remove');
      this.pods.delete(pod.id);
      this.forgetOverride(pod.id);
    });
  }

  synchronize(pods: PodSandbox[]): void {
    const log = this.opts.log;
    const listed = new Set(pods.map((p) => p.id));
    for (const id of this.pods.keys()) {
      if (!listed.has(id)) this.pods.delete(id); // removed while we were away: its namespace went with it
    }
    try {
      this.overrides.retain(listed); // an override ends with its pod
    } catch (e) {
      log.error({ err: oneLine(e) }, 'could not forget the overrides of pods that are gone');
    }
    const work: (() => Promise<void>)[] = [];
    for (const pod of pods) {
      const label = podLabel(pod);
      let spec: QosSpec | null;
      try {
        spec = parseAnnotations(pod.annotations);
      } catch (e) {
        log.warn({ pod: label, err: oneLine(e) }, 'running pod has a bad annotation: left unshaped');
        continue;
      }
      if (spec === null) continue;
      const ref = podNetnsRef(pod);
      if (ref === undefined || this.engine.identity(ref) === undefined) continue; // stopped: its namespace is gone
      if (this.shapeable(pod, label) === undefined) continue;
      const rec = { label, namespace: pod.namespace, name: pod.name, ref, annotated: spec, spec: this.effective(pod.id, label, spec), identity: '' };
      const ends = this.ends.get(pod.id) ?? 0;
      work.push(() => this.reapply(pod.id, rec, ends));
    }
    log.info({ pods: pods.length, shaping: work.length }, 'synchronized: re-applying shaping');
    this.background = this.background.then(() => pool(work, this.opts.syncConcurrency ?? 4));
  }

  /** The namespace to shape, or undefined for a pod that is never shaped (logged). */
  private shapeable(pod: PodSandbox, label: string): NetnsRef | undefined {
    const ref = podNetnsRef(pod);
    if (ref === undefined) {
      this.opts.log.warn({ pod: label }, 'no network namespace and no pid in the runtime\'s message: not shaped');
      return undefined;
    }
    try {
      this.engine.assertNotHost(ref);
    } catch (e) {
      if (isNetqosError(e) && e.code === 'HOST_NETNS') {
        this.opts.log.info({ pod: label }, 'host network: not shaped');
        return undefined;
      }
      throw forPod(label, e);
    }
    return ref;
  }

  private async reapply(id: string, rec: PodRecord, ends: number): Promise<void> {
    const { label, ref } = rec;
    await this.serial(id, async () => {
      // stopped after Synchronize listed it (the pool had not reached it yet): never re-shape it
      if ((this.ends.get(id) ?? 0) !== ends) return;
      try {
        const res = await this.engine.apply(ref, rec.spec, {
          defaultLatencyUs: this.opts.config().queueLatencyUs,
          timeoutMs: BACKGROUND_CHILD_TIMEOUT_MS,
          sriov: sriovFromConfig(this.opts.config()),
          hostSide: this.hostSide(id),
        });
        this.remember(id, { ...rec, identity: this.engine.identity(ref) ?? '' });
        this.opts.log.info({ pod: label, netns: describe(ref), shaped: res.shaped.map(summary) }, 'shaping verified after synchronize');
      } catch (e) {
        this.opts.log.error({ pod: label, err: oneLine(e) }, 'could not re-apply shaping after synchronize');
      }
    });
  }

  /** The pods shaped now, as the API shows them. */
  podViews(): PodView[] {
    return [...this.pods].map(([id, rec]) => view(id, rec, this.overrides.get(id)));
  }

  /**
   * Changes a shaped pod's limits in place and keeps the change (merged with the pod's earlier
   * ones) as its override. The selector is "<namespace>/<name>" or a sandbox id (prefix).
   * Validation happened before (a QosUpdate is valid by type); a direction the pod's annotations
   * do not shape is refused (NOT_FOUND).
   */
  async update(selector: string, update: QosUpdate): Promise<PodView> {
    const { id } = selectPod([...this.pods].map(([podId, r]) => ({ id: podId, namespace: r.namespace, name: r.name })), selector);
    return this.serial(id, async () => {
      const rec = this.pods.get(id);
      if (rec === undefined) throw new NetqosError('NOT_FOUND', `pod ${selector}: stopped while the update waited`);
      if (this.engine.identity(rec.ref) !== rec.identity) throw new NetqosError('NOT_FOUND', `pod ${rec.label}: its network namespace is gone`);
      const merged = mergeUpdates(this.overrides.get(id)?.update ?? {}, update);
      const spec = applyUpdate(rec.annotated, merged, `pod ${rec.label}`);
      const res = await this.engine.apply(rec.ref, spec, {
        defaultLatencyUs: this.opts.config().queueLatencyUs,
        timeoutMs: BACKGROUND_CHILD_TIMEOUT_MS,
        sriov: sriovFromConfig(this.opts.config()),
        hostSide: this.hostSide(id),
      });
      const next = { ...rec, spec };
      this.remember(id, next);
      const override: OverrideRecord = { pod: `${rec.namespace}/${rec.name}`, update: merged, updatedAt: new Date().toISOString() };
      try {
        this.overrides.set(id, override);
      } catch (e) {
        throw new NetqosError('KERNEL', `pod ${rec.label}: updated, but the override could not be kept (a daemon restart would go back to the annotations): ${oneLine(e)}`, { cause: e });
      }
      this.opts.log.info({ pod: rec.label, update: merged, shaped: res.shaped.map(summary) }, 'updated');
      return view(id, next, override);
    });
  }

  /** The annotations' spec with the pod's override on top (the annotations alone if it no longer fits). */
  private effective(id: string, label: string, annotated: QosSpec): QosSpec {
    const o = this.overrides.get(id);
    if (o === undefined) return annotated;
    try {
      return applyUpdate(annotated, o.update, `pod ${label}`);
    } catch (e) {
      this.opts.log.warn({ pod: label, err: oneLine(e) }, 'override does not fit the annotations: using the annotations');
      return annotated;
    }
  }

  private forgetOverride(id: string): void {
    try {
      this.overrides.delete(id);
    } catch (e) {
      this.opts.log.error({ err: oneLine(e) }, 'could not forget the override of a pod that ended');
    }
  }

  /** vethShaping "host": the pod's sandbox id names its objects on the node */
  private hostSide(podId: string): HostSide | undefined {
    return this.opts.config().vethShaping === 'host' ? { identity: podId } : undefined;
  }

  /**
   * Removes the pod's shaping if its namespace is still the one we shaped. Never throws.
   * With vethShaping "host" the node's objects (which outlive the namespace) go in any case,
   * by the pod's identity, also for a pod this process never saw shaped (it restarted).
   */
  private async unshape(pod: PodSandbox, why: 'stop' | 'remove'): Promise<void> {
    const rec = this.pods.get(pod.id);
    const hostSide = this.hostSide(pod.id);
    const now = rec && this.engine.identity(rec.ref);
    const gone = rec === undefined ? asksForShaping(pod) : now === undefined || now !== rec.identity;
    if (hostSide && this.engine.removeNode && gone) {
      await this.engine
        .removeNode(hostSide, { timeoutMs: BACKGROUND_CHILD_TIMEOUT_MS })
        .then((r) => r.removed > 0 && this.opts.log.info({ pod: podLabel(pod), removed: r.removed, on: why }, 'node-side shaping removed'))
        .catch((e: unknown) => this.opts.log.error({ pod: podLabel(pod), err: oneLine(e), on: why }, 'could not remove node-side shaping'));
    }
    if (rec === undefined) return; // never shaped (or already removed)
    const log = this.opts.log;
    if (now === undefined || now !== rec.identity) {
      log.debug({ pod: rec.label, netns: describe(rec.ref) }, 'namespace gone: nothing left to remove');
      this.pods.delete(pod.id);
      // its VFs are back in the host's namespace: put back the PF rates netqos set for them
      await releaseOrphanVfs({ sriov: sriovFromConfig(this.opts.config()) }).catch((e: unknown) =>
        log.error({ pod: rec.label, err: oneLine(e) }, 'could not restore SR-IOV PF rates'),
      );
      return;
    }
    try {
      const res = await this.engine.remove(rec.ref, { timeoutMs: BACKGROUND_CHILD_TIMEOUT_MS, sriov: sriovFromConfig(this.opts.config()), hostSide });
      this.pods.delete(pod.id);
      log.info({ pod: rec.label, removed: res.removed, on: why }, 'unshaped');
    } catch (e) {
      // the pod must still stop; its namespace, and all of ours in it, goes away after this
      log.error({ pod: rec.label, err: oneLine(e), on: why }, 'could not remove shaping');
    }
  }

  private remember(id: string, rec: PodRecord): void {
    this.pods.set(id, rec);
  }

  /** Runs fn after every earlier operation on the same pod, whatever their outcome. */
  private serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(id) ?? Promise.resolve();
    const next = prev.then(fn);
    const tail = next.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(id, tail);
    void tail.then(() => {
      if (this.queues.get(id) === tail) this.queues.delete(id);
    });
    return next;
  }
}

/** The one-line error for the runtime: which pod, then what is wrong with it. */
function forPod(label: string, e: unknown): NetqosError {
  const code = isNetqosError(e) ? e.code : 'KERNEL';
  return new NetqosError(code, `netqos: pod ${label}: ${oneLine(e)}`, { cause: e });
}

function view(id: string, rec: PodRecord, o: OverrideRecord | undefined): PodView {
  return {
    id,
    namespace: rec.namespace,
    name: rec.name,
    netns: describe(rec.ref),
    identity: rec.identity,
    annotated: rec.annotated,
    ...(o ? { override: o.update } : {}),
    spec: rec.spec,
  };
}

/** a pod whose annotations ask for shaping (a bad one counts: it may have been shaped before a change) */
function asksForShaping(pod: PodSandbox): boolean {
  try {
    return parseAnnotations(pod.annotations) !== null;
  } catch {
    return true;
  }
}

const summary = (s: { dev: string; direction: string; rateBps: number }): string => `${s.dev} ${s.direction} ${s.rateBps} bit/s`;

/** Runs the tasks, at most `n` at a time; never rejects (each task handles its errors). */
async function pool(tasks: readonly (() => Promise<void>)[], n: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) await tasks[next++]!();
  };
  await Promise.all(Array.from({ length: Math.min(n, tasks.length) }, worker));
}
