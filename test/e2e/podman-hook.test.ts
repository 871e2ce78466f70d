/**
 * The OCI hook end to end on real podman with crun and runc, on the bridge (veth) and macvlan
 * networks: the installed hooks.d file selects the built hook; annotated containers are shaped
 * (tc read back, iperf3 measured at L2 against a peer namespace), plain ones untouched, bad
 * values refused, host-network containers left alone, and nothing of ours remains afterwards.
 */
import { readFileSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { basename } from 'node:path';
import { loadavg } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/kernel/runner.js';
import {
  annotationArgs,
  containerNetns,
  containerPid,
  IMAGE,
  inContainerNs,
  inLabNs,
  LAB_DIR,
  labUnavailable,
  MACVLAN_NETWORK,
  podman,
  podmanOk,
  setupLab,
  teardownLab,
  writeHookConfig,
  type Runtime,
} from '../support/podman.js';
import { iperfServer, measureL2 } from '../support/traffic.js';

const unavailable = labUnavailable();
if (unavailable && process.env.CI) throw new Error(`podman lab unavailable in CI: ${unavailable}`);

const DIR = `${LAB_DIR}/hook-e2e`;
const HOOKS_D = `${DIR}/hooks.d`;
const CONFIG = `${DIR}/config.json`;
const LOG = `${DIR}/netqos.log`;
const EGRESS = 10e6;
const INGRESS = 20e6;

/** hooks/50-netqos.json as install.sh installs it, pointing at this checkout's build */
function installHook(): void {
  const tmpl = JSON.parse(readFileSync('hooks/50-netqos.json', 'utf8')) as {
    hook: { path: string; args: string[]; env: string[] };
  };
  tmpl.hook.path = process.execPath;
  tmpl.hook.args = ['node', `${process.cwd()}/dist/netqos-hook.cjs`];
  tmpl.hook.env = [...tmpl.hook.env, `NETQOS_CONFIG=${CONFIG}`];
  writeHookConfig('50-netqos.json', tmpl, HOOKS_D);
}

const logRecords = (): { msg: string; id?: string; err?: string }[] =>
  existsSync(LOG)
    ? readFileSync(LOG, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { msg: string })
    : [];

async function qdiscs(name: string): Promise<{ dev: string; kind: string; handle: string }[]> {
  const out = await inContainerNs(name, 'tc', ['-json', 'qdisc', 'show']);
  return JSON.parse(out.stdout || '[]') as { dev: string; kind: string; handle: string }[];
}

async function links(name: string): Promise<{ ifname: string; ifindex: number }[]> {
  const out = await inContainerNs(name, 'ip', ['-json', 'link', 'show']);
  return JSON.parse(out.stdout || '[]') as { ifname: string; ifindex: number }[];
}

async function ipv4(name: string): Promise<string> {
  const out = await inContainerNs(name, 'ip', ['-json', '-4', 'addr', 'show', 'dev', 'eth0']);
  const rows = JSON.parse(out.stdout) as { addr_info: { local: string }[] }[];
  const addr = rows[0]?.addr_info[0]?.local;
  if (!addr) throw new Error(`container ${name} has no IPv4 address on eth0`);
  return addr;
}

/** the node as the hook sees it: links and qdiscs of nqt-pmhost, without counters */
async function hostSnapshot(): Promise<string> {
  const l = await inLabNs('host', 'ip', ['-o', 'link', 'show']);
  const q = await inLabNs('host', 'tc', ['qdisc', 'show']);
  return `${l.stdout.replace(/\s+link\/.*$/gm, '')}\n${q.stdout}`;
}

const sandbox = (ns: string): string => basename(ns);

describe.skipIf(unavailable !== undefined && !process.env.CI)('OCI hook on real podman', () => {
  beforeAll(async () => {
    await run(process.execPath, ['packaging/build.mjs'], { timeoutMs: 60_000 });
    rmSync(DIR, { recursive: true, force: true });
    mkdirSync(HOOKS_D, { recursive: true });
    writeFileSync(CONFIG, JSON.stringify({ log: { file: LOG, level: 'debug' } }));
    await setupLab({ hooksDir: HOOKS_D });
    installHook();
  }, 180_000);

  afterAll(async () => {
    await podman(['rm', '-af', '-t', '0'], { timeoutMs: 60_000 });
    await podman(['pod', 'rm', '-af', '-t', '0'], { timeoutMs: 60_000 });
    await teardownLab();
  }, 180_000);

  const cases: [Runtime, 'bridge' | 'macvlan'][] = [
    ['crun', 'bridge'],
    ['runc', 'bridge'],
    ['crun', 'macvlan'],
    ['runc', 'macvlan'],
  ];

  for (const [runtime, net] of cases) {
    it(`${runtime} + ${net}: annotated container is shaped and measured at its limits`, async () => {
      const name = `nqt-e2e-${runtime}-${net}`;
      const netArgs = net === 'macvlan' ? ['--network', MACVLAN_NETWORK] : [];
      await podmanOk([
        'run', '-d', '--name', name, '--runtime', runtime, ...netArgs,
        ...annotationArgs('kubernetes.io/egress-bandwidth', '10M'),
        ...annotationArgs('kubernetes.io/ingress-bandwidth', '20M'),
        IMAGE, 'sleep', '120',
      ]);
      try {
        const q = await qdiscs(name);
        const eth0 = (await links(name)).find((l) => l.ifname === 'eth0')!;
        const ifb = `nqi${eth0.ifindex}`;
        expect(q.find((x) => x.dev === 'eth0' && x.handle === '4e51:')?.kind).toBe('htb');
        expect(q.find((x) => x.dev === 'eth0' && x.kind === 'ingress')).toBeDefined();
        expect(q.find((x) => x.dev === ifb && x.handle === '4e51:')?.kind).toBe('htb');

        // iperf3 server in the container's namespace; the client in a peer namespace
        const ns = sandbox(await containerNetns(name));
        const clientNs = net === 'macvlan' ? 'nqt-pmpeer' : 'nqt-pmhost';
        const addr = await ipv4(name);
        for (const [dir, dev, limit, reverse] of [
          ['egress', 'eth0', EGRESS, true],
          ['ingress', ifb, INGRESS, false],
        ] as const) {
          const server = await iperfServer(ns, addr);
          const m = await measureL2({ sample: { ns, dev, qdisc: '4e51:' }, clientNs, server, seconds: 5, reverse, limitBps: limit });
          await server.stop();
          const why = `${runtime}/${net} ${dir}: L2 ${(m.l2.steady.bps / 1e6).toFixed(3)} Mbit/s vs ${limit / 1e6}, backlogged ${(m.l2.steady.backloggedShare * 100).toFixed(0)} % of samples, load ${loadavg()[0]?.toFixed(1)}`;
          // This proves a podman container is shaped to its limit (unshaped it reads ~15 Gbit/s);
          // accuracy (±2 %) is asserted by test/integration/engine.test.ts and the bench. Measured
          // once in CI: ingress 20M read -2.5 % when the 67 kB bfifo dropped a whole 64 kB GRO
          // super-packet and the peer's TCP stalled (backlogged 77 % of samples); the ifb's bulk
          // leaf now cuts GRO skbs into frames (test/integration/segmenting.test.ts).
          expect(Math.abs(m.l2.steady.relError), why).toBeLessThan(0.05);
          expect(m.l2.firstSecond.relError, `${dir} first-second overshoot`).toBeLessThan(0.05);
        }
      } finally {
        await podman(['rm', '-f', '-t', '0', name]);
      }
    }, 120_000);
  }

  it('a container without the annotations is untouched, and the hook does not even run', async () => {
    const before = logRecords().length;
    const out = await podmanOk(['run', '--rm', IMAGE, '/usr/sbin/tc', 'qdisc', 'show', 'dev', 'eth0']);
    expect(out).toMatch(/noqueue/);
    expect(out).not.toMatch(/htb/);
    expect(logRecords().length).toBe(before);
  });

  it('runc: an invalid value stops the container with our one-line message', async () => {
    const r = await podman(['run', '--rm', '--runtime', 'runc', ...annotationArgs('kubernetes.io/egress-bandwidth', '10 M'), IMAGE, 'true']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('invalid annotation kubernetes.io/egress-bandwidth="10 M"');
    expect(r.stderr).toMatch(/use a value such as "10M"/);
  });

  it('crun: an invalid value stops the container; crun shows our line where the container asks for hook stderr', async () => {
    const plain = await podman(['run', '--rm', '--runtime', 'crun', ...annotationArgs('kubernetes.io/egress-bandwidth', '-5M'), IMAGE, 'true']);
    expect(plain.code).not.toBe(0);
    // crun discards hook output unless run.oci.hooks.stderr names a file: our log has the line
    expect(logRecords().some((r) => r.msg === 'refused' && r.err?.includes('kubernetes.io/egress-bandwidth="-5M"'))).toBe(true);
    const err = `${DIR}/crun-hook-stderr.txt`;
    const shown = await podman(['run', '--rm', '--runtime', 'crun', '--annotation', `run.oci.hooks.stderr=${err}`, ...annotationArgs('kubernetes.io/egress-bandwidth', '-5M'), IMAGE, 'true']);
    expect(shown.code).not.toBe(0);
    expect(readFileSync(err, 'utf8')).toMatch(/^netqos: container [0-9a-f]{12}: invalid annotation kubernetes\.io\/egress-bandwidth="-5M"/);
  });

  it('--network host is never shaped and the node is unchanged', async () => {
    const before = await hostSnapshot();
    for (const runtime of ['crun', 'runc']) {
      const r = await podman(['run', '--rm', '--runtime', runtime, '--network', 'host', ...annotationArgs('kubernetes.io/egress-bandwidth', '10M'), IMAGE, 'true']);
      expect(r.code, r.stderr).toBe(0);
    }
    expect(await hostSnapshot()).toBe(before);
    expect(logRecords().filter((r) => r.msg === 'host network: not shaped').length).toBeGreaterThanOrEqual(2);
  });

  it('after stop and rm nothing of ours remains', async () => {
    const name = 'nqt-e2e-gone';
    await podmanOk(['run', '-d', '--name', name, ...annotationArgs('kubernetes.io/ingress-bandwidth', '5M'), IMAGE, 'sleep', '60']);
    const ns = await containerNetns(name);
    expect((await links(name)).some((l) => /^nqi\d+$/.test(l.ifname))).toBe(true);
    await podmanOk(['stop', '-t', '0', name]);
    await podmanOk(['rm', name]);
    expect(existsSync(ns)).toBe(false); // the namespace, and everything in it, is gone
    const host = await inLabNs('host', 'ip', ['-o', 'link', 'show']);
    expect(host.stdout).not.toMatch(/nqi\d+/);
    expect(logRecords().some((r) => r.msg === 'namespace gone: nothing left to remove')).toBe(true);
  });

  it('a pod keeps its shaping when one of its app containers stops', async () => {
    await podmanOk(['pod', 'create', '--name', 'nqt-e2e-pod']);
    try {
      await podmanOk(['run', '-d', '--pod', 'nqt-e2e-pod', '--name', 'nqt-e2e-pod-a', ...annotationArgs('kubernetes.io/egress-bandwidth', '10M'), IMAGE, 'sleep', '120']);
      await podmanOk(['run', '-d', '--pod', 'nqt-e2e-pod', '--name', 'nqt-e2e-pod-b', IMAGE, 'sleep', '120']);
      const infraPid = Number(await podmanOk(['pod', 'inspect', '-f', '{{.InfraContainerID}}', 'nqt-e2e-pod']).then((id) => containerPid(id)));
      const shaped = async (): Promise<boolean> => {
        const out = await run('/usr/bin/nsenter', [`--net=/proc/${infraPid}/ns/net`, '/usr/sbin/tc', '-json', 'qdisc', 'show', 'dev', 'eth0']);
        return (JSON.parse(out.stdout) as { handle: string }[]).some((q) => q.handle === '4e51:');
      };
      expect(await shaped()).toBe(true);
      await podmanOk(['stop', '-t', '0', 'nqt-e2e-pod-b']);
      expect(await shaped()).toBe(true);
      await podmanOk(['stop', '-t', '0', 'nqt-e2e-pod-a']);
      expect(await shaped()).toBe(true);
    } finally {
      await podman(['pod', 'rm', '-f', '-t', '0', 'nqt-e2e-pod'], { timeoutMs: 60_000 });
    }
  }, 120_000);
});
