/**
 * The built hook (dist/netqos-hook.cjs) against real namespaces, without a container runtime:
 * the decisions of createRuntime and poststop, the exit codes and the one stderr line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { run } from '../../src/kernel/runner.js';
import { cleanupAll, makeNetns, registerPid, requireRoot, snapshotNs, snapshotRootNs, tcIn, unregisterPid, vethPair } from '../support/fixtures.js';

const root = requireRoot(['ip', 'tc', 'nsenter']);
const dir = mkdtempSync(join(tmpdir(), 'nqt-hook-'));
const CONFIG = join(dir, 'config.json');
const WARN_CONFIG = join(dir, 'warn.json');
const LOG = join(dir, 'netqos.log');
const BW = { 'kubernetes.io/egress-bandwidth': '10M', 'kubernetes.io/ingress-bandwidth': '20M' };

async function hook(state: object, config = CONFIG): Promise<{ code: number; stderr: string; ms: number }> {
  const t0 = performance.now();
  const r = await run('/usr/bin/env', [`NETQOS_CONFIG=${config}`, process.execPath, 'dist/netqos-hook.cjs'], {
    input: JSON.stringify(state),
    allowFail: true,
    timeoutMs: 20_000,
  });
  return { code: r.code, stderr: r.stderr, ms: performance.now() - t0 };
}

function bundle(netnsPath?: string): string {
  const b = mkdtempSync(join(dir, 'bundle-'));
  const namespaces = netnsPath ? [{ type: 'network', path: netnsPath }] : [{ type: 'network' }];
  writeFileSync(join(b, 'config.json'), JSON.stringify({ linux: { namespaces } }));
  return b;
}

const shaped = async (ns: string): Promise<boolean> => (await tcIn(ns, ['qdisc', 'show', 'dev', 'eth0'])).stdout.includes('htb 4e51:');

const sleepers: ChildProcess[] = [];
function sleeperIn(ns: string): number {
  const p = spawn('/usr/bin/nsenter', [`--net=/run/netns/${ns}`, '/bin/sleep', '120'], { stdio: 'ignore' });
  sleepers.push(p);
  registerPid(p.pid!, 'sleep');
  return p.pid!;
}

root.describe('netqos-hook on real namespaces', () => {
  let ns = '';
  let pid = 0;
  beforeAll(async () => {
    await run(process.execPath, ['packaging/build.mjs'], { timeoutMs: 60_000 });
    writeFileSync(CONFIG, JSON.stringify({ log: { file: LOG, level: 'debug' } }));
    writeFileSync(WARN_CONFIG, JSON.stringify({ onError: 'warn', log: { file: LOG } }));
    ns = await makeNetns('hook-c');
    await vethPair(ns, await makeNetns('hook-p'));
    pid = sleeperIn(ns);
    await new Promise((r) => setTimeout(r, 100));
  });
  afterAll(async () => {
    for (const p of sleepers) {
      p.kill('SIGKILL');
      if (p.pid) unregisterPid(p.pid);
    }
    await cleanupAll();
    rmSync(dir, { recursive: true, force: true });
  });

  root.it('createRuntime shapes the namespace of the state pid, silently', async () => {
    const r = await hook({ id: 'a1'.repeat(32), pid, status: 'created', bundle: bundle(), annotations: BW });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(await shaped(ns)).toBe(true);
    const rec = readFileSync(LOG, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { msg: string; shaped?: unknown[] });
    expect(rec.find((x) => x.msg === 'shaped')?.shaped).toHaveLength(2);
  });

  root.it('a bad value fails the container with one line and leaves the namespace as it was', async () => {
    const before = await snapshotNs(ns);
    const r = await hook({ id: 'b2'.repeat(32), pid, status: 'created', bundle: bundle(), annotations: { 'kubernetes.io/ingress-bandwidth': '20Mbps' } });
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^netqos: container b2b2b2b2b2b2: invalid annotation kubernetes\.io\/ingress-bandwidth="20Mbps"/);
    expect(await snapshotNs(ns)).toBe(before);
  });

  root.it('onError "warn" starts it unshaped with a warning line', async () => {
    const before = await snapshotNs(ns);
    const r = await hook({ id: 'c3'.repeat(32), pid, status: 'created', bundle: bundle(), annotations: { 'kubernetes.io/egress-bandwidth': '0' } }, WARN_CONFIG);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/started unshaped: onError is "warn"/);
    expect(await snapshotNs(ns)).toBe(before);
  });

  root.it('the node (the hook\'s own namespace) is never shaped: exit 0, warning, node unchanged', async () => {
    const before = await snapshotRootNs();
    const r = await hook({ id: 'd4'.repeat(32), pid: process.pid, status: 'created', bundle: bundle(), annotations: BW });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/uses the host network: not shaped/);
    expect(await snapshotRootNs()).toBe(before);
  });

  root.it('poststop keeps the shaping while a process still uses the named namespace', async () => {
    const r = await hook({ id: 'e5'.repeat(32), status: 'stopped', bundle: bundle(`/run/netns/${ns}`), annotations: BW });
    expect(r.code).toBe(0);
    expect(await shaped(ns)).toBe(true);
  });

  root.it('poststop never acts on a /proc/<pid>/ns/net path, nor for a pod app container', async () => {
    const viaProc = await hook({ id: 'f6'.repeat(32), status: 'stopped', bundle: bundle(`/proc/${pid}/ns/net`), annotations: BW });
    expect(viaProc.code).toBe(0);
    const app = await hook({ id: 'f7'.repeat(32), status: 'stopped', bundle: bundle(`/run/netns/${ns}`), annotations: { ...BW, 'io.kubernetes.cri.container-type': 'container' } });
    expect(app.code).toBe(0);
    expect(await shaped(ns)).toBe(true);
  });

  root.it('poststop removes everything once nobody is left in the namespace', async () => {
    for (const p of sleepers) p.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
    const r = await hook({ id: 'a8'.repeat(32), status: 'stopped', bundle: bundle(`/run/netns/${ns}`), annotations: BW });
    expect(r.code, r.stderr).toBe(0);
    expect(await shaped(ns)).toBe(false);
    expect((await run('/usr/sbin/ip', ['-n', ns, '-o', 'link', 'show'])).stdout).not.toMatch(/nqi\d+/);
  });

  root.it('poststop after the namespace is gone exits 0 at once', async () => {
    const r = await hook({ id: 'b9'.repeat(32), status: 'stopped', bundle: bundle('/run/netns/nqt-hook-gone-0000'), annotations: BW });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
  });

  root.it('a container without our annotations is left alone', async () => {
    const before = await snapshotNs(ns);
    const r = await hook({ id: 'c0'.repeat(32), pid: process.pid, status: 'created', bundle: bundle(), annotations: { foo: 'bar' } });
    expect(r.code).toBe(0);
    expect(await snapshotNs(ns)).toBe(before);
  });

  root.it('stdin that is not an OCI state: exit 1 with one line', async () => {
    const r = await run(process.execPath, ['dist/netqos-hook.cjs'], { input: 'nope', allowFail: true });
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^netqos: hook stdin is not the OCI state JSON/);
  });
});
