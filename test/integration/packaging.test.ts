/**
 * The Kubernetes manifest and the systemd unit of the NRI daemon: the manifest is checked
 * against the Kubernetes API schema (test/support/k8s-validate.py, from Debian's
 * python3-kubernetes models: unknown fields, types, required fields), the checker is shown to
 * catch each kind of mistake, and the objects give the daemon what it needs on a node.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/domain/config.js';
import { DEFAULT_LOCK_PATH, DEFAULT_NRI_SOCKET } from '../../src/nri/args.js';
import { run } from '../../src/kernel/runner.js';

const MANIFEST = 'packaging/kubernetes/netqos.yaml';
const PY = '/usr/bin/python3';
const dir = mkdtempSync(join(tmpdir(), 'nqt-packaging-'));

const validate = (file: string) => run(PY, ['test/support/k8s-validate.py', file], { allowFail: true, timeoutMs: 60_000 });

/** the manifest's documents as JSON, read by the same YAML parser the checker uses */
async function docs(file = MANIFEST): Promise<K8sObject[]> {
  const r = await run(PY, ['-c', 'import json,sys,yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))', file]);
  return JSON.parse(r.stdout) as K8sObject[];
}

/** writes a changed copy of the manifest */
async function mutated(change: (objs: K8sObject[]) => void): Promise<string> {
  const objs = await docs();
  change(objs);
  const file = join(dir, `m-${Math.random().toString(16).slice(2)}.json`);
  // JSON is YAML: one document holding a list would not do, so one document per object
  writeFileSync(file, objs.map((o) => `---\n${JSON.stringify(o)}\n`).join(''));
  return file;
}

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [k: string]: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

const find = (objs: K8sObject[], kind: string): K8sObject => {
  const o = objs.find((x) => x.kind === kind);
  if (!o) throw new Error(`no ${kind} in ${MANIFEST}`);
  return o;
};

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('packaging/kubernetes/netqos.yaml', () => {
  it('is valid against the Kubernetes API schema', async () => {
    const r = await validate(MANIFEST);
    expect(r.stdout + r.stderr).toBe('ok: 4 objects\n');
    expect(r.code).toBe(0);
  });

  it.each([
    ['a misspelt field', (o: K8sObject[]) => { find(o, 'DaemonSet').spec.template.spec.hostPid = true; }, /unknown field "hostPid" in V1PodSpec/],
    ['a wrong type', (o: K8sObject[]) => { find(o, 'DaemonSet').spec.template.spec.hostPID = 'true'; }, /hostPID: expected bool, got str/],
    ['a missing required field', (o: K8sObject[]) => { delete find(o, 'DaemonSet').spec.selector; }, /missing required field "selector" in V1DaemonSetSpec/],
    ['a field at the wrong level', (o: K8sObject[]) => { find(o, 'DaemonSet').spec.template.spec.privileged = true; }, /unknown field "privileged" in V1PodSpec/],
    ['an unknown kind', (o: K8sObject[]) => { find(o, 'ConfigMap').kind = 'ConfigMapp'; }, /unknown apiVersion\/kind v1 ConfigMapp/],
  ])('the checker rejects %s', async (_what, change, message) => {
    const r = await validate(await mutated(change));
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(message);
  });

  it('runs the external daemon on every node with the host access it needs, and nothing more', async () => {
    const objs = await docs();
    const ns = find(objs, 'Namespace').metadata.name;
    const sa = find(objs, 'ServiceAccount');
    const ds = find(objs, 'DaemonSet');
    const pod = ds.spec.template.spec;
    expect(sa.metadata.namespace).toBe(ns);
    expect(ds.metadata.namespace).toBe(ns);
    expect(pod.serviceAccountName).toBe(sa.metadata.name);
    // no API access at all: no token in the pod, and no Role/Binding in the manifest
    expect(sa.automountServiceAccountToken).toBe(false);
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(objs.map((o) => o.kind).sort()).toEqual(['ConfigMap', 'DaemonSet', 'Namespace', 'ServiceAccount']);
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
    // pods' namespaces by /proc/<pid>/ns/net; the node's namespace recognised by /proc/1
    expect(pod.hostPID).toBe(true);
    expect(pod.hostNetwork).toBe(false);
    const [c] = pod.containers;
    expect(pod.containers).toHaveLength(1);
    expect(c.securityContext.privileged).toBe(true);
    expect(c.command).toEqual(['/usr/bin/node', '/usr/local/lib/netqos/netqos-nri.cjs']);
    expect(c.args).toEqual(['--socket', DEFAULT_NRI_SOCKET, '--config', '/etc/netqos/config.json']);
    const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
    expect(c.image).toBe(`REGISTRY/netqos:${version}`);
    const mounts = Object.fromEntries((c.volumeMounts as { name: string; mountPath: string; mountPropagation?: string }[]).map((m) => [m.mountPath, m]));
    const volumes = Object.fromEntries((pod.volumes as { name: string; hostPath?: { path: string } }[]).map((v) => [v.name, v]));
    const hostPathAt = (p: string) => volumes[mounts[p]!.name]!.hostPath?.path;
    expect(hostPathAt('/var/run/nri')).toBe('/var/run/nri');
    // the node lock is the host's, so a pre-installed plugin or the systemd daemon is seen
    expect(hostPathAt('/run/netqos')).toBe(DEFAULT_LOCK_PATH.slice(0, DEFAULT_LOCK_PATH.lastIndexOf('/')));
    expect(hostPathAt('/var/run/netns')).toBe('/var/run/netns');
    expect(mounts['/var/run/netns']!.mountPropagation).toBe('HostToContainer');
    // the config the daemon reads is a valid netqos config that logs to the container's stdout
    const cm = find(objs, 'ConfigMap');
    expect(volumes[mounts['/etc/netqos']!.name]).toEqual({ name: 'config', configMap: { name: cm.metadata.name } });
    expect(parseConfig(cm.data['config.json'], 'ConfigMap netqos-config').log.file).toBe('/dev/stdout');
  });
});

describe('packaging/systemd/netqos-nri.service', () => {
  const unit = readFileSync('packaging/systemd/netqos-nri.service', 'utf8');
  it('starts the installed daemon on the default NRI socket and restarts it', () => {
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/node \/usr\/local\/lib\/netqos\/netqos-nri\.cjs --socket \/var\/run\/nri\/nri\.sock$/m);
    expect(unit).toMatch(/^Restart=always$/m);
    expect(unit).toMatch(/^WantedBy=multi-user\.target$/m);
  });
  it('the daemon it starts parses that command line', async () => {
    const r = await run(process.execPath, ['dist/netqos-nri.cjs', '--socket', '/var/run/nri/nri.sock', '--help'], { allowFail: true });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^usage: netqos-nri /);
  });
});
