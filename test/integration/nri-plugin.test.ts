/**
 * The NRI plugin on the real kernel, against the fake runtime (containerd 2.1.9 / 1.7.24 wire
 * behaviour, test/support/nri-fake-runtime.ts) over a real unix socket: pods are network
 * namespaces of ours (nqt-…) with a veth, shaped on RunPodSandbox and read back with tc; stop
 * and remove leave nothing; a restarted plugin converges through Synchronize; bad annotations
 * and host-network pods behave as documented. Then the bundled daemon itself: external mode
 * with a runtime restart, pre-installed mode on fd 3 with nothing but the NRI environment, and
 * a second instance refused.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, expect } from 'vitest';
import { DEFAULT_CONFIG, type Config } from '../../src/domain/config.js';
import type { Logger } from '../../src/log.js';
import { NetqosPlugin } from '../../src/nri/plugin.js';
import { serveStub, type StubEnd } from '../../src/nri/stub.js';
import { cleanupAll, ifindexIn, ipIn, makeNetns, nsPath, registerPid, requireRoot, snapshotNs, snapshotRootNs, tcIn, unregisterPid, vethPair } from '../support/fixtures.js';
import { FakeRuntime, type FakePod, type PluginConnection, type RuntimeOptions } from '../support/nri-fake-runtime.js';

const root = requireRoot(['ip', 'tc', 'nsenter']);
const dir = mkdtempSync(join(tmpdir(), 'nqt-nri-int-'));
const BW = { 'kubernetes.io/egress-bandwidth': '10M', 'kubernetes.io/ingress-bandwidth': '20M' };

const records: string[] = [];
const log: Logger = {
  debug: () => undefined,
  info: (_f, m) => void records.push(m),
  warn: (_f, m) => void records.push(`warn ${m}`),
  error: (_f, m) => void records.push(`error ${m}`),
};

interface QdiscJson {
  kind: string;
  handle: string;
  dev: string;
}
const qdiscs = async (ns: string): Promise<QdiscJson[]> => JSON.parse((await tcIn(ns, ['-json', 'qdisc', 'show'])).stdout) as QdiscJson[];
const links = async (ns: string): Promise<string[]> =>
  (JSON.parse((await ipIn(ns, ['-json', 'link', 'show'])).stdout) as { ifname: string }[]).map((l) => l.ifname);
/** what netqos put in a namespace: its HTB roots and ifbs */
async function ours(ns: string): Promise<string[]> {
  const q = (await qdiscs(ns)).filter((x) => x.kind === 'htb' && x.handle === '4e51:').map((x) => `htb ${x.dev}`);
  const ifbs = (await links(ns)).filter((n) => /^nqi\d+$/.test(n)).map((n) => `ifb ${n}`);
  return [...q, ...ifbs].sort();
}

let podCounter = 0;
async function podNs(tag: string): Promise<{ ns: string; pod: FakePod }> {
  const ns = await makeNetns(`nri-${tag}`);
  await vethPair(ns, await makeNetns(`nri-${tag}-h`));
  const id = `${(++podCounter).toString(16).padStart(4, '0')}${'ab'.repeat(30)}`;
  return { ns, pod: { id, name: ns, namespace: 'nqt-test', annotations: BW, netnsPath: nsPath(ns), pid: 1234, ips: ['198.18.0.1'] } };
}

const runtimes: FakeRuntime[] = [];
async function connectPlugin(opts: RuntimeOptions, config: Partial<Config> = {}) {
  const runtime = new FakeRuntime(opts);
  runtimes.push(runtime);
  await runtime.listen();
  const plugin = new NetqosPlugin({ config: () => ({ ...DEFAULT_CONFIG, ...config }), log });
  const next = runtime.nextConnection();
  const ended: Promise<StubEnd> = serveStub(createConnection(runtime.socketPath), plugin, { name: 'netqos', idx: '10', log });
  const conn: PluginConnection = await next;
  await conn.ready;
  return { runtime, plugin, conn, ended };
}

root.describe('the NRI plugin in process, real namespaces', () => {
  afterAll(async () => {
    await Promise.all(runtimes.map((r) => r.dispose()));
    await cleanupAll();
  });

  root.it.each(['2.1', '1.7', '0.12'] as const)('%s: RunPodSandbox shapes the pod before replying; stop removes all; remove keeps nothing', async (profile) => {
    const { ns, pod } = await podNs(`l${profile.replace('.', '')}`);
    const { conn, plugin } = await connectPlugin({ profile });
    const before = await snapshotNs(ns);
    expect(await conn.runPodSandbox(pod)).toMatchObject({ ok: true });
    // shaped by the time the reply came: egress HTB on eth0, ingress on its ifb
    const ifb = `nqi${await ifindex(ns)}`;
    expect(await ours(ns)).toEqual(['htb eth0', `htb ${ifb}`, `ifb ${ifb}`].sort());
    expect(plugin.tracked().size).toBe(1);
    expect(await conn.stopPodSandbox(pod)).toMatchObject({ ok: true });
    expect(await ours(ns)).toEqual([]);
    expect(await conn.removePodSandbox(pod)).toMatchObject({ ok: true });
    expect(plugin.tracked().size).toBe(0);
    expect(await snapshotNs(ns)).toBe(before);
  });

  root.it('1.7: a namespace removed without a stop (the runtime deleted it) leaves no state behind', async () => {
    const { ns, pod } = await podNs('gone');
    const { conn, plugin } = await connectPlugin({ profile: '1.7' });
    expect(await conn.runPodSandbox(pod)).toMatchObject({ ok: true });
    await ipIn(ns, ['link', 'del', 'eth0']); // the pod's network torn down under us
    expect(await conn.removePodSandbox(pod)).toMatchObject({ ok: true });
    expect(plugin.tracked().size).toBe(0);
    expect(await ours(ns)).toEqual([]);
  });

  root.it('a bad annotation fails the pod with one line and leaves its namespace untouched', async () => {
    const { ns, pod } = await podNs('bad');
    const { conn, plugin } = await connectPlugin({ profile: '2.1' });
    const before = await snapshotNs(ns);
    const r = await conn.runPodSandbox({ ...pod, annotations: { 'kubernetes.io/egress-bandwidth': '10 M' } });
    expect(r).toEqual({
      ok: false,
      code: 3,
      message: `netqos: pod nqt-test/${ns} (${pod.id.slice(0, 12)}): invalid annotation kubernetes.io/egress-bandwidth="10 M": not a Kubernetes quantity; use a value such as "10M" (10 Mbit/s) or "1Gi"`,
    });
    expect(await snapshotNs(ns)).toBe(before);
    expect(plugin.tracked().size).toBe(0);
    expect(conn.closeReason).toBeUndefined();
  });

  root.it('with onError "warn" a bad annotation starts the pod unshaped', async () => {
    const { ns, pod } = await podNs('warn');
    const { conn } = await connectPlugin({ profile: '2.1' }, { onError: 'warn' });
    expect(await conn.runPodSandbox({ ...pod, annotations: { 'kubernetes.io/egress-bandwidth': '10 M' } })).toMatchObject({ ok: true });
    expect(await ours(ns)).toEqual([]);
  });

  root.it('a host-network pod is not shaped and not failed; the node is untouched', async () => {
    const { conn, plugin } = await connectPlugin({ profile: '2.1' });
    const before = await snapshotRootNs();
    // CRI hostNetwork: no network namespace entry; the sandbox's pid is in the node's namespace
    const host: FakePod = { id: 'ff'.repeat(32), name: 'hostnet', namespace: 'nqt-test', annotations: BW, pid: process.pid };
    expect(await conn.runPodSandbox(host)).toMatchObject({ ok: true });
    // and an explicit path to the node's namespace (/proc/1/ns/net is not readable in this VM)
    const r = await conn.runPodSandbox({ ...host, id: 'fe'.repeat(32), netnsPath: `/proc/${process.pid}/ns/net` });
    expect(r, JSON.stringify(r)).toMatchObject({ ok: true });
    expect(plugin.tracked().size).toBe(0);
    expect(records.filter((r) => r === 'host network: not shaped').length).toBeGreaterThanOrEqual(2);
    expect(await snapshotRootNs()).toBe(before);
  });

  root.it('a restarted plugin converges: Synchronize restores missing shaping and knows the pods for 1.7 stops', async () => {
    const a = await podNs('sa');
    const b = await podNs('sb');
    const first = await connectPlugin({ profile: '1.7' });
    expect(await first.conn.runPodSandbox(a.pod)).toMatchObject({ ok: true });
    expect(await first.conn.runPodSandbox(b.pod)).toMatchObject({ ok: true });
    first.conn.drop('plugin killed');
    await first.ended;
    // while no plugin ran: a's egress tree lost, b untouched
    await tcIn(a.ns, ['qdisc', 'del', 'dev', 'eth0', 'root']);
    const ifbA = `nqi${await ifindex(a.ns)}`;
    expect(await ours(a.ns)).toEqual([`htb ${ifbA}`, `ifb ${ifbA}`]);
    const second = await connectPlugin({ profile: '1.7', syncPods: [a.pod, b.pod] });
    await second.plugin.idle();
    expect(await ours(a.ns)).toEqual(['htb eth0', `htb ${ifbA}`, `ifb ${ifbA}`].sort());
    expect(second.plugin.tracked().size).toBe(2);
    // 1.7 stop carries no namespace: the new instance knows it from Synchronize
    expect(await second.conn.stopPodSandbox(a.pod)).toMatchObject({ ok: true });
    expect(await second.conn.stopPodSandbox(b.pod)).toMatchObject({ ok: true });
    expect(await ours(a.ns)).toEqual([]);
    expect(await ours(b.ns)).toEqual([]);
  });
});

const ifindex = (ns: string): Promise<number> => ifindexIn(ns, 'eth0');

// ---------------------------------------------------------------------------------------------
// the bundled daemon

const BUNDLE = join(dir, 'netqos-nri.cjs');
const children: ChildProcess[] = [];

function daemon(args: string[], env: NodeJS.ProcessEnv, fd3?: import('node:net').Socket): { child: ChildProcess; stderr: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [BUNDLE, ...args], { env, stdio: ['ignore', 'ignore', 'pipe', ...(fd3 ? [fd3] : [])] });
  children.push(child);
  registerPid(child.pid!, 'node');
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, stderr: () => err, exited };
}

root.describe('the netqos-nri daemon bundle', () => {
  const lock = join(dir, 'nri.lock');
  const logFile = join(dir, 'nri.log');
  const config = join(dir, 'config.json');

  beforeAll(async () => {
    // the same esbuild options as packaging/build.mjs, into a private directory
    await build({ entryPoints: ['src/nri/main.ts'], outfile: BUNDLE, bundle: true, platform: 'node', target: 'node18', format: 'cjs', minify: true, logLevel: 'warning' });
    writeFileSync(config, JSON.stringify({ log: { file: logFile, level: 'debug' } }));
  });
  afterAll(async () => {
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      if (c.pid) unregisterPid(c.pid);
    }
    await Promise.all(runtimes.map((r) => r.dispose()));
    await cleanupAll();
    rmSync(dir, { recursive: true, force: true });
  });

  root.it('external: shapes pods, reconnects after the runtime restarts, and a second instance is refused', async () => {
    const runtime = new FakeRuntime({ profile: '2.1' });
    runtimes.push(runtime);
    await runtime.listen();
    let next = runtime.nextConnection(10_000);
    const d = daemon(['--socket', runtime.socketPath, '--lock', lock, '--config', config], { PATH: process.env.PATH });
    let conn = await next;
    await conn.ready;
    expect(conn.registered).toEqual({ name: 'netqos', idx: '10' });
    const p1 = await podNs('ext1');
    expect(await conn.runPodSandbox(p1.pod)).toMatchObject({ ok: true });
    expect(await ours(p1.ns)).toContain('htb eth0');

    // a second instance on the same node: refused with one line, exit 1
    const second = daemon(['--socket', runtime.socketPath, '--lock', lock, '--config', config], {});
    expect(await second.exited).toBe(1);
    expect(second.stderr()).toBe(
      `netqos-nri: another netqos NRI plugin already shapes this node (pid ${d.child.pid}, external, holding ${lock}); only one may run: stop it first, or use either the pre-installed plugin or the daemon, not both\n`,
    );

    // the runtime restarts: gone for a moment, back on the same socket, with the pod running
    await runtime.stop();
    await new Promise((r) => setTimeout(r, 300));
    runtime.opts = { profile: '2.1', syncPods: [p1.pod] };
    next = runtime.nextConnection(15_000);
    await runtime.listen();
    conn = await next;
    await conn.ready;
    const p2 = await podNs('ext2');
    expect(await conn.runPodSandbox(p2.pod)).toMatchObject({ ok: true });
    expect(await ours(p2.ns)).toContain('htb eth0');
    // the pod known from before the restart is still stopped cleanly
    expect(await conn.stopPodSandbox(p1.pod)).toMatchObject({ ok: true });
    expect(await ours(p1.ns)).toEqual([]);

    d.child.kill('SIGTERM');
    expect(await d.exited).toBe(0);
    const lines = readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { msg: string; name: string; level: number });
    expect(lines.every((l) => l.name === 'netqos-nri')).toBe(true);
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['started', 'registered with the runtime', 'shaped', 'runtime connection closed', 'unshaped', 'stopped']));
  });

  root.it('pre-installed: the connection on fd 3, only the NRI environment, config from Configure', async () => {
    const dropInLog = join(dir, 'dropin.log');
    const runtime = new FakeRuntime({ profile: '2.1', config: JSON.stringify({ log: { file: dropInLog, level: 'info' } }) });
    runtimes.push(runtime);
    await runtime.listen();
    const next = runtime.nextConnection(10_000);
    const end = createConnection(runtime.socketPath);
    await new Promise((r) => end.once('connect', r));
    // exactly what containerd gives a plugin it launches: three variables, no PATH
    const d = daemon(['--lock', lock, '--config', config], { NRI_PLUGIN_SOCKET: '3', NRI_PLUGIN_NAME: 'netqos', NRI_PLUGIN_IDX: '10' }, end);
    end.destroy(); // the child has its own copy
    const conn = await next;
    await conn.ready;
    expect(conn.registered).toEqual({ name: 'netqos', idx: '10' });
    const p = await podNs('pre');
    expect(await conn.runPodSandbox(p.pod)).toMatchObject({ ok: true });
    expect(await ours(p.ns)).toContain('htb eth0');
    expect(await conn.removePodSandbox(p.pod)).toMatchObject({ ok: true });
    expect(await ours(p.ns)).toEqual([]);
    // the runtime going away ends a launched plugin
    await conn.shutdown();
    expect(await d.exited).toBe(0);
    const msgs = readFileSync(dropInLog, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(msgs).toEqual(expect.arrayContaining(['shaped', 'unshaped', 'runtime shutting down']));
  });
});
