/**
 * Updates through the NRI daemon's local API, on the real kernel: the bundled daemon (external
 * mode, against the fake runtime of test/support/nri-fake-runtime.ts) shapes a pod from its
 * annotations; the built CLI changes it with --pod and with a --netns target the daemon knows;
 * the change is kept in overrides.json; the daemon is killed (SIGKILL, by its PID), the pod's
 * shaping damaged meanwhile, and a new daemon re-applies the override after Synchronize, not the
 * annotations. The socket is root only (a process as nobody is refused), bad requests get one
 * line, and the override ends with the pod. Paths are private (/tmp/nqt-nri-upd-...).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, expect } from 'vitest';
import { callApi, listPods } from '../../src/cli/daemon-client.js';
import { run } from '../../src/kernel/runner.js';
import { cleanupAll, ipIn, makeNetns, nsPath, registerPid, requireRoot, tcIn, unregisterPid, vethPair } from '../support/fixtures.js';
import { FakeRuntime, type FakePod } from '../support/nri-fake-runtime.js';

const root = requireRoot(['ip', 'tc', 'nsenter']);
const dir = mkdtempSync(join(tmpdir(), 'nqt-nri-upd-'));
const NRI = join(dir, 'netqos-nri.cjs');
const CLI = join(dir, 'netqos.cjs');
const API = join(dir, 'api', 'api.sock');
const STATE = join(dir, 'state');
const OVERRIDES = join(STATE, 'overrides.json');
const LOCK = join(dir, 'nri.lock');
const CONFIG = join(dir, 'config.json');
const children: ChildProcess[] = [];

function startDaemon(socketPath: string): ChildProcess {
  const child = spawn(process.execPath, [NRI, '--socket', socketPath, '--lock', LOCK, '--config', CONFIG, '--api', API, '--state-dir', STATE], {
    env: { PATH: process.env.PATH },
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  children.push(child);
  registerPid(child.pid!, 'node');
  return child;
}

const cli = (...args: string[]) => run(process.execPath, [CLI, ...args, '--api', API], { allowFail: true, timeoutMs: 30_000, env: process.env });
const classOf = async (ns: string, dev: string): Promise<string> => (await tcIn(ns, ['class', 'show', 'dev', dev])).stdout.trim();
const ifbOf = async (ns: string): Promise<string> =>
  `nqi${(JSON.parse((await ipIn(ns, ['-json', 'link', 'show', 'dev', 'eth0'])).stdout) as { ifindex: number }[])[0]!.ifindex}`;
const overrides = (): { version: number; pods: Record<string, { pod: string; update: unknown }> } =>
  JSON.parse(readFileSync(OVERRIDES, 'utf8')) as ReturnType<typeof overrides>;

async function until(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

root.describe('netqos update through the NRI daemon', () => {
  let runtime: FakeRuntime;

  beforeAll(async () => {
    const opts = { bundle: true, platform: 'node', target: 'node18', format: 'cjs', logLevel: 'warning' } as const;
    await Promise.all([build({ ...opts, entryPoints: ['src/nri/main.ts'], outfile: NRI }), build({ ...opts, entryPoints: ['src/cli/main.ts'], outfile: CLI })]);
    writeFileSync(CONFIG, JSON.stringify({ log: { file: join(dir, 'nri.log'), level: 'debug' } }));
    runtime = new FakeRuntime({ profile: '2.1' });
    await runtime.listen();
  }, 60_000);
  afterAll(async () => {
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      if (c.pid) unregisterPid(c.pid);
    }
    await runtime.dispose();
    await cleanupAll();
    if (!process.env.NQT_KEEP) rmSync(dir, { recursive: true, force: true });
  });

  root.it('updates a pod in place, keeps the override across a daemon restart, ends it with the pod', async () => {
    const ns = await makeNetns('nupd');
    await vethPair(ns, await makeNetns('nupd-h'));
    const pod: FakePod = {
      id: `77${'ab'.repeat(31)}`,
      name: 'web',
      namespace: 'nqt-upd',
      annotations: { 'kubernetes.io/egress-bandwidth': '10M', 'kubernetes.io/ingress-bandwidth': '20M' },
      netnsPath: nsPath(ns),
      pid: 1234,
    };
    let next = runtime.nextConnection(10_000);
    const first = startDaemon(runtime.socketPath);
    let conn = await next;
    await conn.ready;
    expect(await conn.runPodSandbox(pod)).toMatchObject({ ok: true });
    const ifb = await ifbOf(ns);
    expect(await classOf(ns, 'eth0')).toMatch(/rate 10Mbit ceil 10Mbit/);

    // root only: the socket 0600 in a 0700 directory; a process as nobody cannot connect
    expect(statSync(API).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'api')).mode & 0o777).toBe(0o700);
    chmodSync(dir, 0o755); // let nobody reach the api directory's entry at all (it still cannot enter it)
    const asNobody = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'update', '--pod', 'nqt-upd/web', '--egress', '50M', '--api', API], { encoding: 'utf8', timeout: 30_000 });
    expect(asNobody.status).toBe(2);
    expect(asNobody.stderr).toBe(`netqos: cannot connect to the netqos daemon at ${API}: permission denied; run as root\n`);

    // --pod: through the API
    const byPod = await cli('update', '--pod', 'nqt-upd/web', '--egress', '30M');
    expect(byPod.code, byPod.stderr).toBe(0);
    expect(byPod.stdout).toMatch(/^updated pod nqt-upd\/web \(77abababab\w\w\) through the netqos NRI daemon/);
    expect(await classOf(ns, 'eth0')).toMatch(/rate 30Mbit ceil 30Mbit/);
    // a --netns target the daemon shapes goes through it too, and the overrides accumulate
    const byNetns = await cli('update', '--netns', nsPath(ns), '--ingress', '25M');
    expect(byNetns.code, byNetns.stderr).toBe(0);
    expect(byNetns.stdout).toMatch(/through the netqos NRI daemon/);
    expect(await classOf(ns, ifb)).toMatch(/rate 25Mbit ceil 25Mbit/);
    expect(overrides().pods[pod.id]).toMatchObject({ pod: 'nqt-upd/web', update: { egress: { rateBps: 30e6 }, ingress: { rateBps: 25e6 } } });
    expect(statSync(OVERRIDES).mode & 0o777).toBe(0o600);
    expect(statSync(STATE).mode & 0o777).toBe(0o700);
    const views = await listPods(API);
    expect(views).toMatchObject([{ id: pod.id, namespace: 'nqt-upd', name: 'web', annotated: { egress: { rateBps: 10e6 } }, spec: { egress: { rateBps: 30e6 }, ingress: { rateBps: 25e6 } } }]);

    // bad requests: one line, nothing changed
    await expect(callApi(API, 'POST', '/v1/update', { pod: 'nqt-upd/web', egress: '10 M' })).rejects.toThrow(
      'invalid field "egress" "10 M": not a Kubernetes quantity; use a value such as "10M" (10 Mbit/s) or "1Gi"',
    );
    await expect(callApi(API, 'POST', '/v1/update', { pod: 'nqt-upd/nope', egress: '10M' })).rejects.toThrow(
      'pod nqt-upd/nope: the netqos NRI daemon does not shape such a pod (see netqos pods)',
    );
    expect(await classOf(ns, 'eth0')).toMatch(/rate 30Mbit/);

    // the daemon dies; meanwhile the pod's egress tree is lost; a new daemon re-applies the override
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    await tcIn(ns, ['qdisc', 'del', 'dev', 'eth0', 'root']);
    runtime.opts = { profile: '2.1', syncPods: [pod] };
    next = runtime.nextConnection(15_000);
    startDaemon(runtime.socketPath);
    conn = await next;
    await conn.ready;
    await until('egress re-applied at the override rate', async () => /rate 30Mbit ceil 30Mbit/.test(await classOf(ns, 'eth0')));
    expect(await classOf(ns, ifb)).toMatch(/rate 25Mbit ceil 25Mbit/);
    expect((await listPods(API))?.[0]?.override).toEqual({ egress: { rateBps: 30e6 }, ingress: { rateBps: 25e6 } });

    // the override ends with the pod
    expect(await conn.stopPodSandbox(pod)).toMatchObject({ ok: true });
    expect(overrides().pods).toEqual({});
    expect(await listPods(API)).toEqual([]);
  }, 90_000);
});
