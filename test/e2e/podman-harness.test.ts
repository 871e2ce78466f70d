/**
 * Proves test/support/podman.ts against real podman: crun and runc, bridge and macvlan networks,
 * hooks.d selection by the bandwidth annotations, and a teardown that leaves nothing behind.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/kernel/runner.js';
import {
  BANDWIDTH_WHEN,
  BANDWIDTH_WHEN_TWO_PAIRS,
  BRIDGE_GATEWAY,
  HOST_NS_PATH,
  IMAGE,
  LAB_DIR,
  MACVLAN_NETWORK,
  MOUNT_NS,
  PEER_IP,
  annotationArgs,
  containerNetns,
  containerPid,
  inContainerNs,
  inLabNs,
  labUnavailable,
  leftovers,
  podman,
  podmanOk,
  setupLab,
  startInLabNs,
  teardownLab,
  writeHookConfig,
  type Runtime,
} from '../support/podman.js';

const unavailable = labUnavailable();
if (unavailable && process.env.CI) throw new Error(`podman lab unavailable in CI: ${unavailable}`);

const HOOK_DIR = `${LAB_DIR}/harness-test`;
const HOOKS_D = `${HOOK_DIR}/hooks.d`;
const HOOKS_D_TWO_PAIRS = `${HOOK_DIR}/hooks.d-two-pairs`;
const HOOK = `${HOOK_DIR}/hook.sh`;
const HOOK_LOG = `${HOOK_DIR}/hook.log`;

// podman runs poststop hooks with an empty environment: absolute paths only
const HOOK_SCRIPT = `#!/bin/sh
IN=$(/bin/cat)
printf '%s\\t%s\\n' "$(/usr/bin/readlink /proc/self/ns/net)" "$IN" >> "$1"
`;

interface HookCall {
  hookNetns: string;
  state: { id: string; status: string; pid?: number; bundle: string; annotations?: Record<string, string> };
}

function hookCalls(): HookCall[] {
  let text = '';
  try {
    text = readFileSync(HOOK_LOG, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [hookNetns = '', json = '{}'] = line.split('\t');
      return { hookNetns, state: JSON.parse(json) as HookCall['state'] };
    });
}

/** running, not gone or a zombie (the VM's init reaps orphans lazily) */
function alive(pid: number): boolean {
  if (!existsSync(`/proc/${pid}`)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

const RUNTIMES: Runtime[] = ['crun', 'runc'];
const NETWORKS = [
  { name: 'bridge', args: [] as string[], inet: /inet 10\.88\.\d+\.\d+\/16 /, gateway: BRIDGE_GATEWAY },
  { name: 'macvlan', args: ['--network', MACVLAN_NETWORK], inet: /inet 172\.31\.77\.(1[6-9]|2\d|3[01])\/24 /, gateway: PEER_IP },
];

describe.skipIf(!!unavailable)('podman e2e harness (real podman, crun + runc)', () => {
  beforeAll(async () => {
    rmSync(HOOK_DIR, { recursive: true, force: true });
    mkdirSync(HOOKS_D, { recursive: true });
    writeFileSync(HOOK, HOOK_SCRIPT);
    chmodSync(HOOK, 0o755);
    writeHookConfig(
      'nqt-harness.json',
      {
        version: '1.0.0',
        hook: { path: HOOK, args: ['hook.sh', HOOK_LOG], timeout: 10 },
        when: { annotations: BANDWIDTH_WHEN },
        stages: ['createRuntime', 'poststop'],
      },
      HOOKS_D,
    );
    writeHookConfig(
      'nqt-harness-two-pairs.json',
      {
        version: '1.0.0',
        hook: { path: HOOK, args: ['hook.sh', HOOK_LOG], timeout: 10 },
        when: { annotations: BANDWIDTH_WHEN_TWO_PAIRS },
        stages: ['createRuntime', 'poststop'],
      },
      HOOKS_D_TWO_PAIRS,
    );
    await setupLab({ hooksDir: HOOKS_D });
  });

  afterAll(async () => {
    // the last test tears down; this is for a run that failed before it
    await podman(['rm', '--force', '--time', '0', 'nqt-h-sleeper']).catch(() => undefined);
    rmSync(HOOK_DIR, { recursive: true, force: true });
  });

  it('setupLab is idempotent and fast when the lab is up', async () => {
    const t = performance.now();
    const lab = await setupLab({ hooksDir: HOOKS_D });
    expect(lab.wasReady).toBe(true);
    expect(performance.now() - t).toBeLessThan(1000);
    expect(await podmanOk(['image', 'exists', IMAGE]).then(() => true)).toBe(true);
  });

  for (const runtime of RUNTIMES) {
    for (const net of NETWORKS) {
      it(`run --rm with ${runtime} on ${net.name}: eth0 has an address`, async () => {
        const r = await podman(['run', '--rm', '--runtime', runtime, ...net.args, IMAGE, '/usr/sbin/ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0']);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(net.inet);
      });
    }
  }

  it('containerPid/containerNetns/inContainerNs reach a running container from the host side', async () => {
    await podmanOk(['run', '-d', '--name', 'nqt-h-sleeper', '--network', MACVLAN_NETWORK, IMAGE, 'sleep', '60']);
    try {
      const pid = await containerPid('nqt-h-sleeper');
      expect(pid).toBeGreaterThan(1);
      const ns = await containerNetns('nqt-h-sleeper');
      expect(ns).toMatch(/^\/run\/netns\/netns-/);
      expect(statSync(ns).ino).toBe(statSync(`/proc/${pid}/ns/net`).ino);
      const addr = await inContainerNs('nqt-h-sleeper', 'ip', ['-o', '-4', 'addr', 'show', 'dev', 'eth0']);
      expect(addr.stdout).toMatch(/172\.31\.77\./);
      const fromPeer = await inLabNs('peer', 'ip', ['-o', '-4', 'addr', 'show']);
      expect(fromPeer.stdout).toContain(PEER_IP);
    } finally {
      await podman(['rm', '--force', '--time', '0', 'nqt-h-sleeper']);
    }
  });

  it('a macvlan container reaches the peer namespace (iperf3, 1 s, bounded)', async () => {
    const server = startInLabNs('peer', 'iperf3', ['-s', '-1', '-B', PEER_IP], { timeoutMs: 20_000 });
    try {
      await new Promise((r) => setTimeout(r, 300));
      const r = await podman(['run', '--rm', '--network', MACVLAN_NETWORK, IMAGE, 'iperf3', '-c', PEER_IP, '-t', '1', '-J'], {
        timeoutMs: 20_000,
      });
      expect(r.code, r.stderr).toBe(0);
      const bps = (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second;
      expect(bps).toBeGreaterThan(100e6);
    } finally {
      await server.stop();
    }
  });

  it('the hooks.d hook fires (createRuntime + poststop, in nqt-pmhost) for annotated containers only', async () => {
    rmSync(HOOK_LOG, { force: true });
    const CRIO = 'io.kubernetes.cri-o.Annotations';
    const selected: [Runtime, string[], string, string][] = [
      ['crun', [], 'kubernetes.io/egress-bandwidth', '10M'],
      ['runc', ['--network', MACVLAN_NETWORK], 'kubernetes.io/ingress-bandwidth', '5M'],
      ['crun', ['--network', MACVLAN_NETWORK], CRIO, '{"kubernetes.io/egress-bandwidth":"1M","foo":"bar"}'],
    ];
    const ignored: [string, string][] = [
      ['foo', 'bar'],
      ['kubernetes.io/egress-bandwidthX', '1'],
      ['xkubernetes.io/egress-bandwidth', '1'],
      [CRIO, '{"foo":"bar"}'],
    ];
    const hostNetns = `net:[${statSync(HOST_NS_PATH).ino}]`;

    await podmanOk(['run', '--rm', IMAGE, 'true']);
    for (const [key, value] of ignored) await podmanOk(['run', '--rm', ...annotationArgs(key, value), IMAGE, 'true']);
    expect(hookCalls()).toEqual([]);

    for (const [runtime, net, key, value] of selected) {
      rmSync(HOOK_LOG, { force: true });
      const cidfile = `${HOOK_DIR}/cid`;
      rmSync(cidfile, { force: true });
      await podmanOk(['run', '--rm', '--cidfile', cidfile, '--runtime', runtime, ...net, ...annotationArgs(key, value), IMAGE, 'true']);
      const id = readFileSync(cidfile, 'utf8').trim();
      const calls = hookCalls();
      expect(calls.map((c) => c.state.status), `${runtime} ${key}`).toHaveLength(2);
      const [create, stop] = calls as [HookCall, HookCall];
      // createRuntime: the runtime's state, with the host PID of the container
      expect(create.state.id).toBe(id);
      expect(create.state.pid).toBeGreaterThan(1);
      expect(['created', 'creating']).toContain(create.state.status);
      expect(create.state.annotations?.[key]).toBe(value);
      // poststop: libpod's, no pid
      expect(stop.state.id).toBe(id);
      expect(stop.state.status).toBe('stopped');
      expect(stop.state.pid).toBeUndefined();
      // hooks run where the runtime runs: nqt-pmhost, never the real root netns
      for (const c of calls) expect(c.hookNetns).toBe(hostNetns);
    }
  });

  it('podman ANDs the pairs of when.annotations: one pair per key never fires', async () => {
    rmSync(HOOK_LOG, { force: true });
    await podmanOk(['run', '--rm', ...annotationArgs('kubernetes.io/egress-bandwidth', '10M'), IMAGE, 'true'], {
      hooksDir: HOOKS_D_TWO_PAIRS,
    });
    expect(hookCalls()).toEqual([]);
    // the same file fires once both keys are present
    await podmanOk(
      [
        'run',
        '--rm',
        ...annotationArgs('kubernetes.io/egress-bandwidth', '10M'),
        ...annotationArgs('io.kubernetes.cri-o.Annotations', '{"kubernetes.io/egress-bandwidth":"10M"}'),
        IMAGE,
        'true',
      ],
      { hooksDir: HOOKS_D_TWO_PAIRS },
    );
    expect(hookCalls()).toHaveLength(2);
  });

  it('setupLab recovers a lab that died half-way (mount ns pin gone, container still running)', async () => {
    await podmanOk(['run', '-d', '--name', 'nqt-h-orphan', IMAGE, 'sleep', '60']);
    const orphanPid = await containerPid('nqt-h-orphan');
    // what a crash or a reboot leaves: podman state, conmon and the container, but no pinned mount ns
    await run('/usr/bin/umount', [MOUNT_NS]);
    await run('/usr/bin/umount', [dirname(MOUNT_NS)]);
    const lab = await setupLab({ hooksDir: HOOKS_D });
    expect(lab.wasReady).toBe(false);
    expect(lab.steps[0]).toMatch(/cleared a half-built lab/);
    expect(alive(orphanPid)).toBe(false);
    const r = await podman(['run', '--rm', IMAGE, 'true']);
    expect(r.code).toBe(0);
  });

  it('teardownLab leaves no netns, link, mount or process behind', async () => {
    await podmanOk(['run', '-d', '--name', 'nqt-h-sleeper', IMAGE, 'sleep', '60']);
    const report = await teardownLab();
    expect(report.problems).toEqual([]);
    expect(report.removedNetns).toEqual(expect.arrayContaining(['nqt-pmhost', 'nqt-pmpeer']));
    expect(await leftovers()).toEqual([]);
    await expect(podman(['ps'])).rejects.toThrow(/not set up/);
  });
});
