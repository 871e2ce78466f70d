/**
 * The built CLI (dist/netqos.cjs) against the real kernel, in namespaces of our own
 * (nqt-cli-<hex>): apply -> status -> apply a new rate -> remove -> status, a --pid target,
 * rejected arguments that leave the namespace untouched, and the node's own namespace refused
 * with the node's links and qdiscs unchanged.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { run, type RunResult } from '../../src/kernel/runner.js';
import { toolPath } from '../../src/kernel/tools.js';
import { cleanupAll, ipIn, makeNetns, nsPath, pidAlive, registerPid, requireRoot, snapshotNs, unregisterPid, vethPair, type LinkPair } from '../support/fixtures.js';
import { ping } from '../support/traffic.js';

const root = requireRoot(['ip', 'tc', 'nsenter', 'unshare', 'busybox']);

interface CliResult extends RunResult {
  /** stderr lines */
  lines: string[];
}

async function cli(...args: string[]): Promise<CliResult> {
  const res = await run(process.execPath, ['dist/netqos.cjs', ...args], { allowFail: true, timeoutMs: 30_000, env: process.env });
  return { ...res, lines: res.stderr.split('\n').filter((l) => l !== '') };
}

async function ok(...args: string[]): Promise<string> {
  const res = await cli(...args);
  if (res.code !== 0) throw new Error(`netqos ${args.join(' ')} exited ${res.code}: ${res.stderr}`);
  expect(res.stderr).toBe('');
  return res.stdout;
}

interface StatusJson {
  target: string;
  interfaces: {
    name: string;
    egress: { shaped: boolean; shapedOn?: string; rateBps?: number; burstBytes?: number; counters?: Record<string, number> };
    ingress: { shaped: boolean; shapedOn?: string; rateBps?: number; burstBytes?: number; counters?: Record<string, number> };
  }[];
}

const COUNTERS = ['bytes', 'packets', 'drops', 'overlimits', 'backlog'];

/** the node's link names and qdiscs, without objects of other nqt test runs (they come and go) */
async function rootSnapshot(): Promise<string> {
  const links = (await run(toolPath('ip'), ['-o', 'link', 'show'])).stdout
    .split('\n')
    .map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined && !n.startsWith('nqt'))
    .sort();
  const qdiscs = (await run(toolPath('tc'), ['qdisc', 'show'])).stdout
    .split('\n')
    .filter((l) => l !== '' && !/ dev nqt/.test(l))
    .sort();
  return `${links.join('\n')}\n--\n${qdiscs.join('\n')}\n`;
}

root.describe('netqos CLI on the real kernel', () => {
  let pair: LinkPair;
  let ns: string;
  let netns: string;

  beforeAll(async () => {
    await run(process.execPath, ['packaging/build.mjs'], { timeoutMs: 60_000, env: process.env });
    ns = await makeNetns('cli');
    const peer = await makeNetns('cli');
    pair = await vethPair(ns, peer);
    netns = nsPath(ns);
  });

  afterAll(async () => {
    await cleanupAll();
  });

  root.it('apply -> status (table and JSON) -> apply a new rate -> remove -> unshaped, no ifb left', async () => {
    const applied = await ok('apply', '--netns', netns, '--egress', '10M', '--ingress', '20M');
    expect(applied).toMatch(new RegExp(`^shaped netns ${netns}:\\n`));
    expect(applied).toMatch(/\neth0 +egress +eth0 +10M +12500B +bfifo \d+B\n/);
    // the ifb's bulk leaf below 524 Mbit/s cuts GRO skbs into frames
    expect(applied).toMatch(/\neth0 +ingress +nqi\d+ +20M +25000B +tbf \(segments\) \d+B\n/);

    // some traffic both ways, so the counters move
    expect(await ping(ns, pair.b.ipv4, { count: 3 })).toBe(true);
    expect(await ping(pair.b.ns, pair.a.ipv4, { count: 3 })).toBe(true);

    const table = await ok('status', '--netns', netns);
    expect(table.split('\n')[0]).toBe(`netns ${netns}`);
    expect(table).toMatch(/\neth0 +egress +eth0 +10M +12500B +bfifo \d+B +\d+ +\d+ +0 +\d+ +\d+B\n/);
    expect(table).toMatch(/\neth0 +ingress +nqi\d+ +20M +25000B +tbf \(segments\) +\d+ +\d+ +0 +\d+ +\d+B\n/);

    const json = JSON.parse(await ok('status', '--netns', netns, '--json')) as StatusJson;
    const eth0 = json.interfaces.find((i) => i.name === 'eth0')!;
    expect(eth0.egress).toMatchObject({ shaped: true, shapedOn: 'eth0', rateBps: 10e6, burstBytes: 12500 });
    expect(eth0.ingress).toMatchObject({ shaped: true, shapedOn: expect.stringMatching(/^nqi\d+$/), rateBps: 20e6 });
    for (const dir of [eth0.egress, eth0.ingress]) {
      expect(Object.keys(dir.counters ?? {}).sort()).toEqual([...COUNTERS].sort());
      expect(dir.counters!.bytes).toBeGreaterThan(0);
      expect(dir.counters!.packets).toBeGreaterThanOrEqual(3);
    }

    // a new rate, egress only: ingress goes
    await ok('apply', '--netns', netns, '--egress', '30M', '--egress-burst', '400k');
    const again = JSON.parse(await ok('status', '--netns', netns, '--json')) as StatusJson;
    const e2 = again.interfaces.find((i) => i.name === 'eth0')!;
    expect(e2.egress).toMatchObject({ shaped: true, rateBps: 30e6 });
    // the kernel keeps a burst as time at the rate: 400k bits (50000 B) reads back a few bytes off
    expect(Math.abs(e2.egress.burstBytes! - 50_000)).toBeLessThan(50);
    expect(e2.ingress).toEqual({ direction: 'ingress', shaped: false });
    expect(await ok('status', '--netns', netns)).toMatch(/\neth0 +egress +eth0 +30M +(4999\d|5000\d)B /);

    const removed = await ok('remove', '--netns', netns);
    expect(removed).toMatch(new RegExp(`^netns ${netns}: removed [1-9]\\d* objects?\\n$`));
    expect(await ok('remove', '--netns', netns)).toBe(`netns ${netns}: removed 0 objects\n`);

    const after = await ok('status', '--netns', netns);
    expect(after).toMatch(/\neth0 +egress +unshaped\neth0 +ingress +unshaped\n$/);
    const links = (await ipIn(ns, ['-o', 'link', 'show'])).stdout;
    expect(links).not.toMatch(/nqi\d+/);
    const unshaped = JSON.parse(await ok('status', '--netns', netns, '--json')) as StatusJson;
    expect(unshaped.interfaces.map((i) => [i.name, i.egress.shaped, i.ingress.shaped])).toEqual([['eth0', false, false]]);
  });

  root.it('--pid: a process in the namespace names it', async () => {
    let pid = 0;
    const sleeping = run(toolPath('nsenter'), [`--net=${netns}`, '/bin/sleep', '60'], {
      allowFail: true,
      timeoutMs: 90_000,
      onSpawn: (p) => {
        pid = p;
        registerPid(p, 'sleep');
      },
    });
    try {
      for (let i = 0; i < 200 && !pidAlive(pid, 'sleep'); i++) await new Promise((r) => setTimeout(r, 10));
      expect(pidAlive(pid, 'sleep')).toBe(true);
      expect(readFileSync(`/proc/${pid}/comm`, 'utf8').trim()).toBe('sleep');

      const applied = await ok('apply', '--pid', String(pid), '--ingress', '5M');
      expect(applied).toMatch(new RegExp(`^shaped pid ${pid}:\\n`));
      const json = JSON.parse(await ok('status', '--pid', String(pid), '--json')) as StatusJson;
      expect(json.target).toBe(`pid ${pid}`);
      expect(json.interfaces[0]!.ingress).toMatchObject({ shaped: true, rateBps: 5e6 });
      expect(json.interfaces[0]!.egress.shaped).toBe(false);
      // the same namespace seen through its path
      const byPath = JSON.parse(await ok('status', '--netns', netns, '--json')) as StatusJson;
      // everything but the live counters, which packets the kernel sends by itself (IPv6 neighbour
      // discovery on a fresh veth) may move between the two reads
      const configured = (interfaces: StatusJson['interfaces']): string => JSON.stringify(interfaces, (k, v: unknown) => (k === 'counters' ? undefined : v));
      expect(configured(byPath.interfaces)).toBe(configured(json.interfaces));
      expect(configured(json.interfaces)).toContain('"rateBps":5000000');
      expect(await ok('remove', '--pid', String(pid))).toMatch(new RegExp(`^pid ${pid}: removed [1-9]`));
    } finally {
      if (pidAlive(pid, 'sleep')) process.kill(pid, 'SIGKILL');
      await sleeping;
      unregisterPid(pid);
    }
    expect((await cli('status', '--pid', String(pid))).lines).toEqual([`netqos: pid ${pid}: no such process`]);
  });

  const REJECTED: [string, string[], number, RegExp][] = [
    ['a bad rate', ['apply', '--egress', '10 M'], 2, /^netqos: invalid --egress "10 M": not a Kubernetes quantity; use a value such as "10M"/],
    ['a misspelt flag', ['apply', '--egres', '10M'], 2, /^netqos: unknown option --egres; usage: netqos apply /],
    ['no direction', ['apply'], 2, /^netqos: give --egress and\/or --ingress .*; usage: netqos apply /],
    ['a latency without unit', ['apply', '--egress', '10M', '--queue-latency', '5'], 2, /^netqos: invalid --queue-latency "5": a duration needs a unit; /],
    ['a burst without its rate', ['apply', '--ingress', '10M', '--egress-burst', '1M'], 2, /^netqos: --egress-burst needs --egress /],
    ['an interface it does not have', ['apply', '--egress', '10M', '--interfaces', 'eth9'], 1, /^netqos: .*eth9, which the container does not have; its interfaces are: eth0$/],
    ['a flag on status it does not take', ['status', '--egress', '10M'], 2, /^netqos: unknown option --egress; usage: netqos status /],
  ];

  it.each(REJECTED)('rejects %s (%j): exit %d, one stderr line, namespace untouched', async (_what, args, code, message) => {
    const [command, ...rest] = args as [string, ...string[]];
    const before = await snapshotNs(ns);
    const res = await cli(command, '--netns', netns, ...rest);
    expect(res.code).toBe(code);
    expect(res.lines).toHaveLength(1);
    expect(res.lines[0]).toMatch(message);
    expect(res.stdout).toBe('');
    expect(await snapshotNs(ns)).toBe(before);
  });

  it.each([
    [['bogus'], 2, /^netqos: unknown command "bogus"; the commands are apply, update, remove, status, gc, doctor, demo; usage: /],
    [[], 2, /^netqos: missing command; usage: /],
    [['status'], 2, /^netqos: no target: name a container, or give --pid or --netns; usage: netqos status /],
    [['status', '--netns', '/run/netns/nqt-cli-no-such-ns'], 1, /^netqos: netns \/run\/netns\/nqt-cli-no-such-ns: network namespace .* does not exist$/],
    [['remove', '--netns', '/run/netns/nqt-cli-no-such-ns'], 1, /does not exist$/],
    [['status', '--pid', '4194999'], 1, /^netqos: pid 4194999: no such process$/],
  ])('netqos %j -> exit %d, one line', async (args, code, message) => {
    const res = await cli(...args);
    expect(res.code).toBe(code);
    expect(res.lines).toHaveLength(1);
    expect(res.lines[0]).toMatch(message);
  });

  root.it('--help for the CLI and each command, on stdout, exit 0', async () => {
    const main = await ok('--help');
    for (const c of ['apply', 'remove', 'status', 'gc', 'doctor', 'demo']) {
      expect(main).toMatch(new RegExp(`\\n  ${c} +\\S`));
      const help = await ok(c, '--help');
      expect(help).toMatch(new RegExp(`^usage: netqos ${c}`));
    }
    expect(await ok('apply', '-h')).toContain('--egress RATE');
  });

  root.it('refuses the node\'s own namespace and leaves the node\'s links and qdiscs as they were', async () => {
    const before = await rootSnapshot();
    const attempts: string[][] = [
      ['apply', '--netns', '/proc/1/ns/net', '--egress', '10M', '--ingress', '10M'],
      ['apply', '--netns', '/proc/self/ns/net', '--egress', '10M', '--ingress', '10M'],
      ['apply', '--pid', String(process.pid), '--egress', '10M'],
      ['remove', '--netns', '/proc/self/ns/net'],
      ['status', '--pid', String(process.pid)],
    ];
    for (const args of attempts) {
      const res = await cli(...args);
      expect(res.code, args.join(' ')).toBe(1);
      expect(res.lines, args.join(' ')).toHaveLength(1);
      expect(res.stdout).toBe('');
      // /proc/1/ns/net may be unreadable (no CAP_SYS_PTRACE over pid 1): refused as not found then
      if (args.includes('/proc/1/ns/net')) expect(res.lines[0]).toMatch(/^netqos: netns \/proc\/1\/ns\/net: /);
      else expect(res.lines[0]).toMatch(/shares the node's network namespace .*; netqos never shapes the node's own interfaces$/);
    }
    expect(await rootSnapshot()).toBe(before);
  });
});
