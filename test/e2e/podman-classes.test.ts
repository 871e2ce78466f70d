/**
 * Classes and unshaped subnets end to end on real podman (crun and runc, macvlan network): the
 * OCI hook builds the class tree from `netqos.io/egress-classes` and `netqos.io/unshaped-subnets`
 * (read back with tc: classes with their rates, filters with their matches), a class is held to
 * its rate while the parent has room to spare (one 5 s flow, 8M class under 20M), a bad classes
 * annotation makes `podman run` fail with our one-line message, and after stop + rm (and the
 * lab's teardown) nothing of ours remains.
 *
 * The peer namespace nqt-pmpeer gets three more addresses on the macvlan subnet, outside the
 * containers' range .16-.31: A (class a), B (class b), U (an unshaped subnet).
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { loadavg } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/kernel/runner.js';
import { parseHtbClassText, type HtbClass } from '../../src/plan/parse-class.js';
import { parseFilters } from '../../src/plan/parse-tc.js';
import { matchText, readU32Match } from '../../src/plan/u32.js';
import {
  annotationArgs,
  containerNetns,
  HOST_NS_PATH,
  IMAGE,
  inContainerNs,
  inLabNs,
  LAB_DIR,
  labUnavailable,
  leftovers,
  MACVLAN_NETWORK,
  PEER_LINK,
  podman,
  podmanOk,
  setupLab,
  teardownLab,
  writeHookConfig,
  type Runtime,
} from '../support/podman.js';
import { iperfClient, iperfServer } from '../support/traffic.js';

const unavailable = labUnavailable();
if (unavailable && process.env.CI) throw new Error(`podman lab unavailable in CI: ${unavailable}`);

const DIR = `${LAB_DIR}/classes-e2e`;
const HOOKS_D = `${DIR}/hooks.d`;
const CONFIG = `${DIR}/config.json`;
const LOG = `${DIR}/netqos.log`;
const PEER_A = '172.31.77.241';
const PEER_B = '172.31.77.242';
const PEER_U = '172.31.77.243';
const TOTAL = 20e6;
const RATE_A = 8e6;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const ANNOTATIONS: [string, string][] = [
  ['kubernetes.io/egress-bandwidth', '20M'],
  [
    'netqos.io/egress-classes',
    JSON.stringify([
      { name: 'a', rate: '8M', priority: 0, match: { cidr: PEER_A } },
      { name: 'b', rate: '4M', ceil: '10M', priority: 3, match: { cidr: `${PEER_B}/32`, protocol: 'tcp', port: 5201 } },
    ]),
  ],
  ['netqos.io/unshaped-subnets', `${PEER_U}/32`],
];
const annotations = (list: [string, string][]): string[] => list.flatMap(([k, v]) => annotationArgs(k, v));

/** hooks/50-netqos.json as install.sh installs it, pointing at this checkout's build */
function installHook(): void {
  const tmpl = JSON.parse(readFileSync('hooks/50-netqos.json', 'utf8')) as { hook: { path: string; args: string[]; env: string[] } };
  tmpl.hook.path = process.execPath;
  tmpl.hook.args = ['node', `${process.cwd()}/dist/netqos-hook.cjs`];
  tmpl.hook.env = [...tmpl.hook.env, `NETQOS_CONFIG=${CONFIG}`];
  writeHookConfig('50-netqos.json', tmpl, HOOKS_D);
}

const logRecords = (): { msg: string; err?: string }[] =>
  existsSync(LOG)
    ? readFileSync(LOG, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { msg: string; err?: string })
    : [];

async function classes(name: string): Promise<HtbClass[]> {
  const out = await inContainerNs(name, 'tc', ['-s', 'class', 'show', 'dev', 'eth0']);
  return parseHtbClassText(out.stdout, 'eth0');
}

/** the filters on our HTB root of eth0 as "prio flowid match" */
async function rootFilters(name: string): Promise<string[]> {
  const out = await inContainerNs(name, 'tc', ['-json', 'filter', 'show', 'dev', 'eth0', 'parent', '4e51:']);
  return parseFilters(out.stdout, 'eth0', '4e51:').map((f) => {
    const m = readU32Match(f.keys ?? [], f.protocol, 'dst');
    return `${f.prio} ${f.protocol} ${f.flowid} ${m ? matchText(m) : '?'}`;
  });
}

/** the node as the hook sees it: links and qdiscs of nqt-pmhost, without counters */
async function hostSnapshot(): Promise<string> {
  const l = await inLabNs('host', 'ip', ['-o', 'link', 'show']);
  const q = await inLabNs('host', 'tc', ['qdisc', 'show']);
  return `${l.stdout.replace(/\s+link\/.*$/gm, '')}\n${q.stdout}`;
}

describe.skipIf(unavailable !== undefined && !process.env.CI)('classes and unshaped subnets on real podman', () => {
  beforeAll(async () => {
    await run(process.execPath, ['packaging/build.mjs'], { timeoutMs: 60_000 });
    rmSync(DIR, { recursive: true, force: true });
    mkdirSync(HOOKS_D, { recursive: true });
    writeFileSync(CONFIG, JSON.stringify({ log: { file: LOG, level: 'debug' } }));
    await setupLab({ hooksDir: HOOKS_D });
    installHook();
    for (const a of [PEER_A, PEER_B, PEER_U]) {
      const r = await inLabNs('peer', 'ip', ['addr', 'replace', `${a}/24`, 'dev', PEER_LINK]);
      if (r.code !== 0) throw new Error(`peer address ${a}: ${r.stderr}`);
    }
  }, 180_000);

  afterAll(async () => {
    // the last test tears the lab down itself (to run its leftovers check); after a failure it may not have
    if (!existsSync(HOST_NS_PATH)) return;
    await podman(['rm', '-af', '-t', '0'], { timeoutMs: 60_000 });
    await teardownLab();
  }, 180_000);

  for (const runtime of ['crun', 'runc'] as Runtime[]) {
    it(`${runtime}: the hook builds the class tree and its filters`, async () => {
      const name = `nqt-cls-${runtime}`;
      await podmanOk(['run', '-d', '--name', name, '--runtime', runtime, '--network', MACVLAN_NETWORK, ...annotations(ANNOTATIONS), IMAGE, 'sleep', '120']);
      try {
        const cls = await classes(name);
        const view = cls.map((c) => [c.classid, c.parent, c.rateBytes * 8, c.ceilBytes * 8, c.prio]).sort((a, b) => String(a[0]).localeCompare(String(b[0])));
        expect(view).toEqual([
          ['4e51:1', 'root', TOTAL, TOTAL, undefined],
          ['4e51:10', '4e51:1', 8e6, TOTAL, 7], // default: 20M - 8M - 4M
          ['4e51:11', '4e51:1', RATE_A, RATE_A, 0],
          ['4e51:12', '4e51:1', 4e6, 10e6, 3],
          ['4e51:2', 'root', 100e9, 100e9, 0], // unshaped, beside the parent
        ]);
        expect(await rootFilters(name)).toEqual([
          `1 ip 4e51:2 ${PEER_U}/32`,
          `10 ip 4e51:11 ${PEER_A}/32`,
          `12 ip 4e51:12 ${PEER_B}/32 tcp port 5201`,
        ]);
        const root = await inContainerNs(name, 'tc', ['qdisc', 'show', 'dev', 'eth0', 'root']);
        expect(root.stdout).toMatch(/^qdisc htb 4e51: root .*default 0x10\b/m);
      } finally {
        await podman(['rm', '-f', '-t', '0', name]);
      }
    }, 90_000);
  }

  it('crun: class a is held to its 8M while the 20M parent has room (5 s flow, HTB class counters)', async () => {
    const name = 'nqt-cls-measure';
    await podmanOk(['run', '-d', '--name', name, '--runtime', 'crun', '--network', MACVLAN_NETWORK, ...annotations(ANNOTATIONS), IMAGE, 'sleep', '120']);
    try {
      const ns = basename(await containerNetns(name));
      const server = await iperfServer('nqt-pmpeer', PEER_A);
      try {
        const flow = iperfClient(ns, server, { seconds: 5 });
        await sleep(1500);
        const a = await classes(name);
        const ta = Date.now();
        await sleep(3000);
        const b = await classes(name);
        const tb = Date.now();
        const result = await flow;
        const bytes = (l: HtbClass[], id: string): number => l.find((c) => c.classid === id)?.counters?.bytes ?? 0;
        const l2 = ((bytes(b, '4e51:11') - bytes(a, '4e51:11')) * 8 * 1000) / (tb - ta);
        const other = ((bytes(b, '4e51:10') - bytes(a, '4e51:10')) * 8 * 1000) / (tb - ta);
        const why = `class a L2 ${(l2 / 1e6).toFixed(3)} Mbit/s (goodput ${(result.receivedBps / 1e6).toFixed(2)}), default ${(other / 1e6).toFixed(3)}, load ${loadavg()[0]?.toFixed(1)}`;
        process.stdout.write(`[podman-classes] ${why}\n`);
        // unshaped podman reads ~15 Gbit/s, the parent allows 20M: only the class keeps it at 8M
        expect(Math.abs(l2 / RATE_A - 1), why).toBeLessThan(0.05);
        expect(other, why).toBeLessThan(0.5e6);
      } finally {
        await server.stop();
      }
    } finally {
      await podman(['rm', '-f', '-t', '0', name]);
    }
  }, 90_000);

  const BAD = JSON.stringify([{ name: 'a', rate: '8M', match: { cidr: `${PEER_A}/24` } }]);
  const BAD_LINE = `invalid annotation netqos.io/egress-classes=${JSON.stringify(BAD)}: class 1 ("a"): match.cidr: "${PEER_A}/24" has host bits set; the network is "172.31.77.0/24"`;

  it('runc: a bad classes annotation stops the container with our one-line message', async () => {
    const r = await podman(['run', '--rm', '--runtime', 'runc', '--network', MACVLAN_NETWORK, ...annotations([ANNOTATIONS[0]!, ['netqos.io/egress-classes', BAD]]), IMAGE, 'true']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(BAD_LINE);
    expect(r.stderr).toContain('use a JSON array such as');
  }, 60_000);

  it('crun: a bad classes annotation stops the container; the line is in the log and in run.oci.hooks.stderr', async () => {
    const plain = await podman(['run', '--rm', '--runtime', 'crun', '--network', MACVLAN_NETWORK, ...annotations([ANNOTATIONS[0]!, ['netqos.io/egress-classes', BAD]]), IMAGE, 'true']);
    expect(plain.code).not.toBe(0);
    // crun discards hook output unless run.oci.hooks.stderr names a file: our log has the line
    expect(logRecords().some((x) => x.msg === 'refused' && x.err?.includes(BAD_LINE))).toBe(true);
    const err = `${DIR}/crun-hook-stderr.txt`;
    const shown = await podman([
      'run', '--rm', '--runtime', 'crun', '--network', MACVLAN_NETWORK, '--annotation', `run.oci.hooks.stderr=${err}`,
      ...annotations([ANNOTATIONS[0]!, ['netqos.io/egress-classes', BAD]]), IMAGE, 'true',
    ]);
    expect(shown.code).not.toBe(0);
    const text = readFileSync(err, 'utf8');
    expect(text).toMatch(/^netqos: container [0-9a-f]{12}: invalid annotation netqos\.io\/egress-classes=/);
    expect(text).toContain(BAD_LINE);
    expect(text.trim().split('\n')).toHaveLength(1);
  }, 60_000);

  it('after stop and rm nothing of ours remains, and after the lab teardown nothing of the lab', async () => {
    const before = await hostSnapshot();
    const name = 'nqt-cls-gone';
    await podmanOk(['run', '-d', '--name', name, '--network', MACVLAN_NETWORK, ...annotations(ANNOTATIONS), IMAGE, 'sleep', '60']);
    const ns = await containerNetns(name);
    expect((await classes(name)).length).toBe(5);
    await podmanOk(['stop', '-t', '0', name]);
    await podmanOk(['rm', name]);
    expect(existsSync(ns)).toBe(false); // the namespace, and everything in it, is gone
    expect(await hostSnapshot()).toBe(before); // nothing of ours on the node (nqt-pmhost)
    expect((await podmanOk(['ps', '-aq'])).trim()).toBe('');
    await teardownLab();
    expect(await leftovers()).toEqual([]);
  }, 120_000);
});
