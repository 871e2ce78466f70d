/**
 * vethShaping "host" in the front ends, without root: the NRI plugin passes the pod's sandbox id
 * as the identity and removes the node's objects even when the pod's namespace is gone; the
 * hook's identity is the CRI sandbox id where there is one, else the container id.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, type Config } from '../../src/domain/config.js';
import type { EngineOptions, HostSide } from '../../src/engine.js';
import { hookIdentity } from '../../src/hook/owner.js';
import type { NetnsRef } from '../../src/kernel/netns.js';
import type { Logger } from '../../src/log.js';
import type { PodEngine } from '../../src/nri/pod-engine.js';
import { NetqosPlugin } from '../../src/nri/plugin.js';
import type { PodSandbox } from '../../src/nri/proto.js';
import type { CallInfo } from '../../src/nri/stub.js';

const key = (ref: NetnsRef): string => ('pid' in ref ? `pid:${ref.pid}` : ref.path);
const who = (h?: HostSide): string => (h ? ` host=${h.identity}` : '');

class FakeEngine implements PodEngine {
  readonly ops: string[] = [];
  readonly netns = new Map<string, string>();
  async apply(ref: NetnsRef, _spec: unknown, opts: EngineOptions) {
    this.ops.push(`apply ${key(ref)}${who(opts.hostSide)}`);
    return { shaped: [], plan: { ip: [], tc: [], ipAfter: [], shaped: [] } };
  }
  async remove(ref: NetnsRef, opts: EngineOptions) {
    this.ops.push(`remove ${key(ref)}${who(opts.hostSide)}`);
    return { present: true, removed: 3 };
  }
  async removeNode(h: HostSide) {
    this.ops.push(`removeNode${who(h)}`);
    return { present: false, removed: 1 };
  }
  identity(ref: NetnsRef) {
    return this.netns.get(key(ref));
  }
  assertNotHost() {}
}

const log: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const call = (): CallInfo => ({ method: 'StateChange', signal: new AbortController().signal, timeoutMs: 2000, metadata: [] });
const pod = (name: string, over: Partial<PodSandbox> = {}): PodSandbox => ({
  id: `${name}-sandbox`,
  name,
  uid: `uid-${name}`,
  namespace: 'team',
  annotations: { 'kubernetes.io/egress-bandwidth': '10M' },
  linuxNamespaces: [{ type: 'network', path: `/run/netns/${name}` }],
  pid: 100,
  ips: [],
  ...over,
});

function setup(config: Partial<Config>) {
  const engine = new FakeEngine();
  return { engine, plugin: new NetqosPlugin({ config: () => ({ ...DEFAULT_CONFIG, ...config }), log, engine }) };
}

describe('NRI plugin with vethShaping "host"', () => {
  it('applies and removes with the sandbox id as the identity', async () => {
    const { engine, plugin } = setup({ vethShaping: 'host' });
    engine.netns.set('/run/netns/a', 'ns-a');
    await plugin.runPodSandbox(pod('a'), call());
    await plugin.stopPodSandbox(pod('a'));
    expect(engine.ops).toEqual(['apply /run/netns/a host=a-sandbox', 'remove /run/netns/a host=a-sandbox']);
  });

  it('the namespace is gone at stop: the node\'s objects are still removed, by identity', async () => {
    const { engine, plugin } = setup({ vethShaping: 'host' });
    engine.netns.set('/run/netns/b', 'ns-b');
    await plugin.runPodSandbox(pod('b'), call());
    engine.netns.delete('/run/netns/b');
    await plugin.stopPodSandbox(pod('b'));
    expect(engine.ops).toEqual(['apply /run/netns/b host=b-sandbox', 'removeNode host=b-sandbox']);
  });

  it('a pod it never saw shaped (the plugin restarted) is cleaned on the node if it asks for shaping, else left alone', async () => {
    const { engine, plugin } = setup({ vethShaping: 'host' });
    await plugin.removePodSandbox(pod('c'));
    await plugin.removePodSandbox(pod('d', { annotations: {} }));
    expect(engine.ops).toEqual(['removeNode host=c-sandbox']);
  });

  it('"container" (the default) passes no identity and never touches the node', async () => {
    const { engine, plugin } = setup({});
    engine.netns.set('/run/netns/e', 'ns-e');
    await plugin.runPodSandbox(pod('e'), call());
    engine.netns.delete('/run/netns/e');
    await plugin.stopPodSandbox(pod('e'));
    await plugin.removePodSandbox(pod('f'));
    expect(engine.ops).toEqual(['apply /run/netns/e']);
  });
});

describe('hookIdentity', () => {
  it('the CRI sandbox id (containerd, CRI-O), else the container id', () => {
    expect(hookIdentity({ id: 'c1', annotations: { 'io.kubernetes.cri.sandbox-id': 'sb1' } })).toBe('sb1');
    expect(hookIdentity({ id: 'c1', annotations: { 'io.kubernetes.cri-o.SandboxID': 'sb2' } })).toBe('sb2');
    expect(hookIdentity({ id: 'c1', annotations: {} })).toBe('c1');
    expect(hookIdentity({ id: 'c1', annotations: { 'io.kubernetes.cri.sandbox-id': 'bad:id' } })).toBe('c1');
  });
});
