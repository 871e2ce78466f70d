/** OCI state parsing and stage detection, from the states crun, runc and podman really send. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bundleNetnsPath, parseState, stageOf } from '../../src/hook/state.js';
import { isPodAppContainer } from '../../src/hook/owner.js';
import hooksD from '../../hooks/50-netqos.json' with { type: 'json' };

const ann = { 'kubernetes.io/egress-bandwidth': '10M' };
// recorded on podman 4.3.1 (shared/testbeds/podman/REPORT.md), ids shortened
const STATES: [string, object, 'createRuntime' | 'poststop'][] = [
  ['crun createRuntime', { ociVersion: '1.0', id: 'c1', pid: 20568, root: '/m', bundle: '/b', status: 'created', annotations: ann }, 'createRuntime'],
  ['runc createRuntime', { ociVersion: '1.0.2-dev', id: 'r1', status: 'creating', pid: 20775, bundle: '/b', annotations: ann }, 'createRuntime'],
  ['podman poststop', { ociVersion: '1.0.2-dev', id: 'p1', status: 'stopped', bundle: '/b', annotations: ann }, 'poststop'],
  ['runtime poststop with pid 0', { ociVersion: '1.0.2', id: 'p2', status: 'stopped', pid: 0, bundle: '/b' }, 'poststop'],
  ['stopped with a pid', { ociVersion: '1.0.2', id: 'p3', status: 'stopped', pid: 42, bundle: '/b' }, 'poststop'],
];

describe('stage detection from the OCI state', () => {
  it.each(STATES)('%s', (_name, state, stage) => {
    expect(stageOf(parseState(JSON.stringify(state)))).toBe(stage);
  });
  it('an explicit argv stage wins', () => {
    expect(stageOf(parseState(JSON.stringify(STATES[0]![1])), 'poststop')).toBe('poststop');
    expect(stageOf(parseState(JSON.stringify(STATES[2]![1])), 'createRuntime')).toBe('createRuntime');
    expect(stageOf(parseState(JSON.stringify(STATES[2]![1])), 'bogus')).toBe('poststop');
  });
  it('keeps annotations and drops a zero pid', () => {
    const s = parseState(JSON.stringify(STATES[3]![1]));
    expect(s.pid).toBeUndefined();
    expect(s.annotations).toEqual({});
    expect(parseState(JSON.stringify(STATES[0]![1])).annotations).toEqual(ann);
  });
});

describe('bad stdin gives one clear line', () => {
  it.each([
    ['not JSON', 'hello', /hook stdin is not the OCI state JSON \(got "hello"\)/],
    ['no id', '{"status":"created","bundle":"/b"}', /OCI state field id/],
    ['pid is a string', '{"id":"x","status":"created","pid":"7","bundle":"/b"}', /OCI state field pid/],
    ['annotation value not a string', '{"id":"x","status":"created","bundle":"/b","annotations":{"a":1}}', /OCI state field annotations\.a/],
  ])('%s', (_n, text, msg) => {
    expect(() => parseState(text)).toThrow(msg);
    try {
      parseState(text);
    } catch (e) {
      expect((e as Error).message).not.toContain('\n');
      expect((e as { code: string }).code).toBe('INVALID_ARGUMENT');
    }
  });
});

describe('the network namespace named by bundle/config.json', () => {
  const made: string[] = [];
  afterAll(() => {
    for (const d of made) rmSync(d, { recursive: true, force: true });
  });
  const bundle = (namespaces: object[]): string => {
    const dir = mkdtempSync(join(tmpdir(), 'nqt-bundle-'));
    made.push(dir);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ linux: { namespaces } }));
    return dir;
  };
  it('a podman container: /run/netns/netns-<uuid>', () => {
    expect(bundleNetnsPath(bundle([{ type: 'pid' }, { type: 'network', path: '/run/netns/netns-1' }]))).toBe('/run/netns/netns-1');
  });
  it('a pod member: the infra PID path (which poststop never acts on)', () => {
    expect(bundleNetnsPath(bundle([{ type: 'network', path: '/proc/28493/ns/net' }]))).toBe('/proc/28493/ns/net');
  });
  it('--network none (a new namespace, no path) and --network host (no entry)', () => {
    expect(bundleNetnsPath(bundle([{ type: 'network' }]))).toBeUndefined();
    expect(bundleNetnsPath(bundle([{ type: 'pid' }, { type: 'mount' }]))).toBeUndefined();
  });
  it('no bundle', () => {
    expect(bundleNetnsPath('/nonexistent/nqt')).toBeUndefined();
  });
});

describe('pod app containers', () => {
  it.each([
    [{ 'io.kubernetes.cri.container-type': 'container' }, true],
    [{ 'io.kubernetes.cri.container-type': 'sandbox' }, false],
    [{ 'io.kubernetes.cri-o.ContainerType': 'container' }, true],
    [{ 'io.kubernetes.cri-o.ContainerType': 'sandbox' }, false],
    [{}, false],
  ])('%j -> %s', (a, want) => expect(isPodAppContainer(a)).toBe(want));
});

describe('hooks/50-netqos.json selects exactly the containers with our keys', () => {
  const [[keyRe, valueRe]] = Object.entries(hooksD.when.annotations) as [[string, string]];
  const matches = (a: Record<string, string>): boolean =>
    Object.entries(a).some(([k, v]) => new RegExp(keyRe).test(k) && new RegExp(valueRe).test(v));
  it.each([
    [{ 'kubernetes.io/egress-bandwidth': '10M' }, true],
    [{ 'kubernetes.io/ingress-bandwidth': '1G' }, true],
    [{ 'netqos.io/queue-latency': '5ms' }, true],
    [{ 'io.kubernetes.cri-o.Annotations': '{"kubernetes.io/egress-bandwidth":"10M"}' }, true],
    [{ 'io.kubernetes.cri-o.Annotations': '{"netqos.io/interfaces":"eth0"}' }, true],
    [{ 'io.kubernetes.cri-o.Annotations': '{"app":"web"}' }, false],
    [{ 'kubernetes.io/egress-bandwidthX': '1' }, false],
    [{ 'example.com/egress-bandwidth': '1' }, false],
    [{ foo: 'bar' }, false],
  ])('%j -> %s', (a, want) => expect(matches(a)).toBe(want));
  it('runs at createRuntime and poststop, with PATH set (podman gives poststop no environment)', () => {
    expect(hooksD.stages).toEqual(['createRuntime', 'poststop']);
    expect(hooksD.hook.env.some((e: string) => e.startsWith('PATH=/'))).toBe(true);
    expect(hooksD.version).toBe('1.0.0');
  });
});
