/**
 * The NRI daemon's local API and its persistence, pure parts and the plugin's decisions (with a
 * recording engine, no root): request parsing and its one-line refusals, pod selection, the
 * overrides file (format, validation, atomic save), and update -> override -> re-apply.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/domain/config.js';
import { NetqosError } from '../../src/domain/errors.js';
import type { NetnsRef } from '../../src/kernel/netns.js';
import type { Logger } from '../../src/log.js';
import { parseUpdateRequest, selectPod } from '../../src/nri/api-protocol.js';
import { OverrideStore, parseOverrides, renderOverrides } from '../../src/nri/overrides.js';
import type { PodEngine } from '../../src/nri/pod-engine.js';
import { NetqosPlugin } from '../../src/nri/plugin.js';
import type { PodSandbox } from '../../src/nri/proto.js';
import type { QosSpec } from '../../src/domain/spec.js';

const tmp = mkdtempSync(join(tmpdir(), 'nqt-api-unit-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(NetqosError);
    return (e as Error).message;
  }
  throw new Error('expected a rejection');
}

describe('parseUpdateRequest', () => {
  it('reads the fields with the CLI flags\' names and limits', () => {
    expect(parseUpdateRequest({ pod: 'default/web', egress: '20M', 'queue-latency': '2ms' })).toEqual({
      pod: 'default/web',
      update: { egress: { rateBps: 20e6 }, queueLatencyUs: 2000 },
    });
  });
  it.each([
    [[1], 'the update request is not a JSON object; send e.g. {"pod":"default/web","egress":"20M"}'],
    [{ egress: '20M' }, 'field "pod" is missing or not a string; give "<namespace>/<name>" or a sandbox id, e.g. "default/web"'],
    [{ pod: 'a/b', egres: '20M' }, 'unknown field "egres" in the update request; the fields are pod, egress, ingress, egress-burst, ingress-burst, queue-latency'],
    [{ pod: 'a/b', egress: 20e6 }, 'invalid field "egress" 20000000: not a string; send quantities as strings, e.g. "20M"'],
    [{ pod: 'a/b', ingress: '1' }, 'invalid field "ingress" "1": below the minimum of 1k bit/s; use a value such as "10M" (10 Mbit/s) or "1Gi"'],
    [{ pod: 'a/b' }, 'nothing to update: give at least one of field "egress", field "ingress", field "egress-burst", field "ingress-burst", field "queue-latency"'],
  ])('refuses %j', (body, text) => {
    expect(message(() => parseUpdateRequest(body))).toBe(text);
  });
});

describe('selectPod', () => {
  const pods = [
    { id: 'aaaa1111bbbb', namespace: 'default', name: 'web' },
    { id: 'aaaa2222cccc', namespace: 'default', name: 'db' },
  ];
  it('by namespace/name, by id and by a unique id prefix', () => {
    expect(selectPod(pods, 'default/db').id).toBe('aaaa2222cccc');
    expect(selectPod(pods, 'aaaa1111bbbb').name).toBe('web');
    expect(selectPod(pods, 'aaaa1111').name).toBe('web');
  });
  it.each([
    ['default/api', 'pod default/api: the netqos NRI daemon does not shape such a pod (see netqos pods)'],
    ['aaaa3333', 'pod aaaa3333: the netqos NRI daemon does not shape such a pod (see netqos pods)'],
    ['aaaa', 'pod "aaaa" is neither "<namespace>/<name>" nor a sandbox id (8 to 64 hex digits)'],
    ['web', 'pod "web" is neither "<namespace>/<name>" nor a sandbox id (8 to 64 hex digits)'],
    ['a/b/c', 'pod "a/b/c" is not "<namespace>/<name>"; e.g. "default/web"'],
  ])('%s', (sel, text) => {
    expect(message(() => selectPod(pods, sel))).toBe(text);
  });
  it('an ambiguous prefix', () => {
    const twins = [...pods, { id: 'aaaa1111bbbc', namespace: 'x', name: 'y' }];
    expect(message(() => selectPod(twins, 'aaaa1111'))).toBe('pod aaaa1111 names 2 pods; give more of the sandbox id');
  });
});

describe('overrides file', () => {
  const rec = { pod: 'default/web', update: { egress: { rateBps: 20e6 }, queueLatencyUs: 10_000 }, updatedAt: '2026-01-01T00:00:00.000Z' };
  it('round-trips, sorted by sandbox id', () => {
    const m = new Map([['bb', rec], ['aa', { ...rec, pod: 'x/y' }]]);
    const text = renderOverrides(m);
    expect(text.indexOf('"aa"')).toBeLessThan(text.indexOf('"bb"'));
    expect(parseOverrides(text, '/f')).toEqual(m);
  });
  it.each([
    ['{', /^overrides file \/f is not JSON/],
    ['{"version":2,"pods":{}}', /^overrides file \/f: version: /],
    ['{"version":1,"pods":{"a":{"pod":"x","update":{"egress":{"rateBps":5}},"updatedAt":"t"}}}', /^overrides file \/f: pods\.a\.update\.egress\.rateBps: /],
    ['{"version":1,"pods":{"a":{"pod":"x","update":{"egres":{}},"updatedAt":"t"}}}', /^overrides file \/f: pods\.a\.update/],
  ])('refuses %s', (text, re) => {
    expect(message(() => parseOverrides(text, '/f'))).toMatch(re);
  });
  it('the store writes atomically with private modes, and moves a bad file aside', () => {
    const path = join(tmp, 'state', 'overrides.json');
    const s = new OverrideStore(path);
    expect(s.load()).toBeUndefined();
    s.set('aa', rec);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(tmp, 'state')).mode & 0o777).toBe(0o700);
    const again = new OverrideStore(path);
    expect(again.load()).toBeUndefined();
    expect(again.get('aa')).toEqual(rec);
    again.retain(new Set());
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ version: 1, pods: {} });
    writeFileSync(path, '{"version":1}');
    const broken = new OverrideStore(path);
    expect(broken.load()).toMatch(/^overrides file .*: pods: .*: moved to .*overrides\.json\.bad, starting without overrides$/);
    expect(existsSync(`${path}.bad`)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// the plugin

class Engine implements PodEngine {
  readonly applied: QosSpec[] = [];
  async apply(_ref: NetnsRef, spec: QosSpec) {
    this.applied.push(spec);
    return { shaped: [], plan: { ip: [], tc: [], ipAfter: [], shaped: [] } as never };
  }
  async remove() {
    return { present: true, removed: 1 };
  }
  identity() {
    return 'ns-1';
  }
  assertNotHost() {}
}
const log: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const pod: PodSandbox = {
  id: 'cafe0123456789',
  name: 'web',
  uid: 'u',
  namespace: 'default',
  annotations: { 'kubernetes.io/egress-bandwidth': '10M', 'kubernetes.io/ingress-bandwidth': '20M' },
  linuxNamespaces: [{ type: 'network', path: '/run/netns/web' }],
  pid: 1,
  ips: [],
};
const call = { method: 'StateChange', signal: new AbortController().signal, timeoutMs: 2000, metadata: [] };

describe('NetqosPlugin.update', () => {
  it('applies the annotations with the override on top, keeps it, re-applies it after a restart, ends it with the pod', async () => {
    const path = join(tmp, 'p1', 'overrides.json');
    const engine = new Engine();
    const plugin = new NetqosPlugin({ config: () => DEFAULT_CONFIG, log, engine, overrides: new OverrideStore(path) });
    await plugin.runPodSandbox(pod, call);
    const view = await plugin.update('default/web', { egress: { rateBps: 30e6 } });
    expect(view.spec).toEqual({ egress: { rateBps: 30e6 }, ingress: { rateBps: 20e6 } });
    await plugin.update('cafe0123', { ingress: { burstBits: 1e6 } });
    expect(engine.applied.at(-1)).toEqual({ egress: { rateBps: 30e6 }, ingress: { rateBps: 20e6, burstBits: 1e6 } });
    await plugin.update('default/web', { queueLatencyUs: 700 });

    // a new daemon: Synchronize re-applies the override, not the annotations
    const store = new OverrideStore(path);
    expect(store.load()).toBeUndefined();
    const engine2 = new Engine();
    const restarted = new NetqosPlugin({ config: () => DEFAULT_CONFIG, log, engine: engine2, overrides: store });
    restarted.synchronize([pod]);
    await restarted.idle();
    expect(engine2.applied).toEqual([{ egress: { rateBps: 30e6 }, ingress: { rateBps: 20e6, burstBits: 1e6 }, queueLatencyUs: 700 }]);
    expect(restarted.podViews()[0]?.override).toEqual({ egress: { rateBps: 30e6 }, ingress: { burstBits: 1e6 }, queueLatencyUs: 700 });
    await restarted.stopPodSandbox(pod);
    expect(JSON.parse(readFileSync(path, 'utf8')).pods).toEqual({});
  });

  it('refuses a pod it does not shape and a direction the annotations do not shape', async () => {
    const plugin = new NetqosPlugin({ config: () => DEFAULT_CONFIG, log, engine: new Engine() });
    await plugin.runPodSandbox({ ...pod, annotations: { 'kubernetes.io/egress-bandwidth': '10M' } }, call);
    await expect(plugin.update('default/db', { egress: { rateBps: 1e7 } })).rejects.toThrow('pod default/db: the netqos NRI daemon does not shape such a pod');
    await expect(plugin.update('default/web', { ingress: { rateBps: 1e7 } })).rejects.toThrow(
      'pod default/web (cafe01234567): ingress is not shaped, so there is no ingress limit to update',
    );
  });

  it('a pod stopped before the Synchronize pool reached it is not re-shaped', async () => {
    const engine = new Engine();
    const plugin = new NetqosPlugin({ config: () => DEFAULT_CONFIG, log, engine, syncConcurrency: 1 });
    const other = { ...pod, id: 'beef0123456789', name: 'other' };
    plugin.synchronize([other, pod]);
    await plugin.stopPodSandbox(pod);
    await plugin.idle();
    expect(engine.applied).toHaveLength(1);
    expect([...plugin.tracked().keys()]).toEqual(['beef0123456789']);
  });
});
