/**
 * The plugin's decisions with a recording engine (no root, no kernel): what is shaped, what is
 * refused and how the refusal reads, what is removed when, and what Synchronize converges to.
 * The real kernel is in test/integration/nri-plugin.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, type Config } from '../../src/domain/config.js';
import { NetqosError } from '../../src/domain/errors.js';
import type { NetnsRef } from '../../src/kernel/netns.js';
import type { Logger } from '../../src/log.js';
import type { PodEngine } from '../../src/nri/pod-engine.js';
import { NetqosPlugin } from '../../src/nri/plugin.js';
import type { PodSandbox } from '../../src/nri/proto.js';
import type { CallInfo } from '../../src/nri/stub.js';

const key = (ref: NetnsRef): string => ('pid' in ref ? `pid:${ref.pid}` : ref.path);

/** namespaces by key -> identity; the host's is 'host' */
class FakeEngine implements PodEngine {
  readonly ops: string[] = [];
  readonly netns = new Map<string, string>();
  failApply: Error | undefined;
  async apply(ref: NetnsRef, spec: { egress?: { rateBps: number } }) {
    this.ops.push(`apply ${key(ref)} ${spec.egress?.rateBps ?? '-'}`);
    if (this.failApply) throw this.failApply;
    return { shaped: [], plan: { ip: [], tc: [], ipAfter: [], shaped: [] } as never };
  }
  async remove(ref: NetnsRef) {
    this.ops.push(`remove ${key(ref)}`);
    return { present: true, removed: 3 };
  }
  identity(ref: NetnsRef) {
    return this.netns.get(key(ref));
  }
  assertNotHost(ref: NetnsRef) {
    const id = this.netns.get(key(ref));
    if (id === undefined) throw new NetqosError('NOT_FOUND', `${key(ref)}: network namespace does not exist`);
    if (id === 'host') throw new NetqosError('HOST_NETNS', `${key(ref)} shares the node's network namespace`);
  }
}

const lines: string[] = [];
const log: Logger = {
  debug: (_f, m) => void lines.push(`debug ${m}`),
  info: (_f, m) => void lines.push(`info ${m}`),
  warn: (_f, m) => void lines.push(`warn ${m}`),
  error: (_f, m) => void lines.push(`error ${m}`),
};

function setup(config: Partial<Config> = {}) {
  const engine = new FakeEngine();
  const plugin = new NetqosPlugin({ config: () => ({ ...DEFAULT_CONFIG, ...config }), log, engine });
  return { engine, plugin };
}

const call = (aborted = false): CallInfo => {
  const c = new AbortController();
  if (aborted) c.abort();
  return { method: 'StateChange', signal: c.signal, timeoutMs: 2000, metadata: [] };
};

const pod = (name: string, over: Partial<PodSandbox> = {}): PodSandbox => ({
  id: `${name}-id-0123456789`,
  name,
  uid: `uid-${name}`,
  namespace: 'team',
  annotations: { 'kubernetes.io/egress-bandwidth': '10M' },
  linuxNamespaces: [{ type: 'network', path: `/run/netns/${name}` }],
  pid: 100,
  ips: [],
  ...over,
});
/** what containerd 1.7 sends on stop and remove: no pid, no namespaces */
const bare = (p: PodSandbox): PodSandbox => ({ ...p, pid: 0, linuxNamespaces: [] });

describe('RunPodSandbox', () => {
  it('shapes the pod\'s pinned namespace and remembers it', async () => {
    const { engine, plugin } = setup();
    engine.netns.set('/run/netns/a', 'ns-a');
    await plugin.runPodSandbox(pod('a'), call());
    expect(engine.ops).toEqual(['apply /run/netns/a 10000000']);
    expect(plugin.tracked().get('a-id-0123456789')).toMatchObject({ label: 'team/a (a-id-0123456)', identity: 'ns-a' });
  });

  it('falls back to /proc/<pid>/ns/net without a network path', async () => {
    const { engine, plugin } = setup();
    engine.netns.set('pid:100', 'ns-p');
    await plugin.runPodSandbox(pod('p', { linuxNamespaces: [{ type: 'network', path: '' }] }), call());
    expect(engine.ops).toEqual(['apply pid:100 10000000']);
  });

  it('leaves pods without annotations of ours alone', async () => {
    const { engine, plugin } = setup();
    await plugin.runPodSandbox(pod('plain', { annotations: { 'io.kubernetes.cri.sandbox-id': 'x' } }), call());
    expect(engine.ops).toEqual([]);
    expect(plugin.tracked().size).toBe(0);
  });

  it('fails a pod with a bad annotation, naming the pod, before touching anything', async () => {
    const { engine, plugin } = setup();
    engine.netns.set('/run/netns/b', 'ns-b');
    await expect(plugin.runPodSandbox(pod('b', { annotations: { 'kubernetes.io/egress-bandwidth': '10 M' } }), call())).rejects.toThrow(
      'netqos: pod team/b (b-id-0123456): invalid annotation kubernetes.io/egress-bandwidth="10 M": not a Kubernetes quantity; use a value such as "10M" (10 Mbit/s) or "1Gi"',
    );
    expect(engine.ops).toEqual([]);
  });

  it('starts it unshaped with a warning when onError is "warn"', async () => {
    const { engine, plugin } = setup({ onError: 'warn' });
    await plugin.runPodSandbox(pod('w', { annotations: { 'kubernetes.io/egress-bandwidth': '10m' } }), call());
    expect(engine.ops).toEqual([]);
    expect(lines.at(-1)).toBe('warn bad annotation: started unshaped (onError is "warn")');
  });

  it('never shapes a host-network pod, and does not fail it', async () => {
    const { engine, plugin } = setup();
    engine.netns.set('pid:100', 'host');
    await plugin.runPodSandbox(pod('h', { linuxNamespaces: [{ type: 'pid', path: '' }] }), call());
    expect(engine.ops).toEqual([]);
    expect(lines.at(-1)).toBe('info host network: not shaped');
  });

  it('fails the pod when applying fails, with the pod in the message', async () => {
    const { engine, plugin } = setup();
    engine.netns.set('/run/netns/k', 'ns-k');
    engine.failApply = new NetqosError('KERNEL', 'tc rejected: RTNETLINK answers: Invalid argument');
    await expect(plugin.runPodSandbox(pod('k'), call())).rejects.toMatchObject({
      code: 'KERNEL',
      message: 'netqos: pod team/k (k-id-0123456): tc rejected: RTNETLINK answers: Invalid argument',
    });
    expect(plugin.tracked().size).toBe(0);
  });

  it('undoes a shaping that finished after the runtime was told the pod failed', async () => {
    const { engine, plugin } = setup();
    engine.netns.set('/run/netns/late', 'ns-late');
    await plugin.runPodSandbox(pod('late'), call(true));
    expect(engine.ops).toEqual(['apply /run/netns/late 10000000', 'remove /run/netns/late']);
    expect(plugin.tracked().size).toBe(0);
  });
});

describe('StopPodSandbox and RemovePodSandbox', () => {
  it('containerd 1.7: removes from the namespace recorded at run, though stop names none', async () => {
    const { engine, plugin } = setup();
    engine.netns.set('/run/netns/s', 'ns-s');
    const p = pod('s');
    await plugin.runPodSandbox(p, call());
    await plugin.stopPodSandbox(bare(p));
    await plugin.removePodSandbox(bare(p));
    expect(engine.ops).toEqual(['apply /run/netns/s 10000000', 'remove /run/netns/s']);
    expect(plugin.tracked().size).toBe(0);
  });

  it('does not touch a namespace that is no longer the one it shaped (pid or path reused)', async () => {
    const { engine, plugin } = setup();
    engine.netns.set('pid:100', 'ns-old');
    const p = pod('r', { linuxNamespaces: [] });
    await plugin.runPodSandbox(p, call());
    engine.netns.set('pid:100', 'ns-someone-else');
    await plugin.stopPodSandbox(bare(p));
    expect(engine.ops).toEqual(['apply pid:100 10000000']);
    expect(plugin.tracked().size).toBe(0);
  });

  it('remove cleans up what a failed stop left', async () => {
    const { engine, plugin } = setup();
    engine.netns.set('/run/netns/f', 'ns-f');
    const p = pod('f');
    await plugin.runPodSandbox(p, call());
    const remove = engine.remove.bind(engine);
    engine.remove = async (ref) => {
      engine.ops.push('remove failed');
      throw new NetqosError('KERNEL', 'busy');
    };
    await plugin.stopPodSandbox(bare(p)); // logged, never thrown: the pod must stop
    engine.remove = remove;
    await plugin.removePodSandbox(bare(p));
    expect(engine.ops).toEqual(['apply /run/netns/f 10000000', 'remove failed', 'remove /run/netns/f']);
    expect(plugin.tracked().size).toBe(0);
  });

  it('runs the operations on one pod in the order asked', async () => {
    const { engine, plugin } = setup();
    engine.netns.set('/run/netns/o', 'ns-o');
    const slow = engine.apply.bind(engine);
    engine.apply = async (ref, spec) => {
      await new Promise((r) => setTimeout(r, 30));
      return slow(ref, spec as never);
    };
    const p = pod('o');
    await Promise.all([plugin.runPodSandbox(p, call()), plugin.stopPodSandbox(bare(p)), plugin.removePodSandbox(bare(p))]);
    expect(engine.ops).toEqual(['apply /run/netns/o 10000000', 'remove /run/netns/o']);
  });
});

describe('Synchronize', () => {
  it('re-applies every running pod that asks for shaping, forgets pods the runtime no longer has', async () => {
    const { engine, plugin } = setup();
    for (const n of ['x', 'y', 'gone']) engine.netns.set(`/run/netns/${n}`, `ns-${n}`);
    await plugin.runPodSandbox(pod('gone'), call());
    engine.ops.length = 0;
    plugin.synchronize([
      pod('x'),
      pod('y', { annotations: { 'kubernetes.io/egress-bandwidth': '20M' } }),
      pod('plain', { annotations: {} }),
      pod('stopped'), // its namespace no longer exists
      pod('bad', { annotations: { 'kubernetes.io/egress-bandwidth': 'lots' } }),
    ]);
    await plugin.idle();
    expect(engine.ops.sort()).toEqual(['apply /run/netns/x 10000000', 'apply /run/netns/y 20000000']);
    expect([...plugin.tracked().keys()].sort()).toEqual(['x-id-0123456789', 'y-id-0123456789']);
    expect(lines).toContain('warn running pod has a bad annotation: left unshaped');
  });
});
