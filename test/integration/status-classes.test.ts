/**
 * `netqos status` through the built CLI (dist/netqos.cjs) on a namespace shaped with classes
 * and unshaped subnets (applied by the engine from the annotations): every class is listed with
 * its match, rate, ceil and prio, in the table and in --json, and the counters of the class a
 * flow goes to grow under a short flow while the others stay put.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { parseAnnotations } from '../../src/domain/annotations.js';
import { cidrOf } from '../../src/domain/cidr.js';
import { applyQos } from '../../src/engine.js';
import { run } from '../../src/kernel/runner.js';
import { cleanupAll, ipBatch, makeNetns, nsPath, nsRef, requireRoot, vethPair, type LinkPair } from '../support/fixtures.js';
import { iperfClient, iperfServer } from '../support/traffic.js';

const root = requireRoot(['ip', 'tc', 'nsenter', 'iperf3']);

interface ClassJson {
  classid: string;
  name: string;
  position?: number;
  match: string[];
  rateBps: number;
  ceilBps: number;
  prio?: number;
  counters: { bytes: number; packets: number; drops: number; overlimits: number; backlog: number };
}
interface DirJson {
  shaped: boolean;
  rateBps?: number;
  classes?: ClassJson[];
  unshaped?: string[];
}
interface StatusJson {
  interfaces: { name: string; egress: DirJson; ingress: DirJson }[];
}

async function cli(...args: string[]): Promise<string> {
  const res = await run(process.execPath, ['dist/netqos.cjs', ...args], { allowFail: true, timeoutMs: 30_000, env: process.env });
  if (res.code !== 0 || res.stderr !== '') throw new Error(`netqos ${args.join(' ')} exited ${res.code}: ${res.stderr}`);
  return res.stdout;
}

root.describe('netqos status with classes on the real kernel', () => {
  let pair: LinkPair;
  let ns: string;
  let peer: string;
  /** a second address of the peer (class #1), and one in the unshaped subnet */
  let peerA: string;
  let peerU: string;
  const status = async (): Promise<StatusJson> => JSON.parse(await cli('status', '--netns', nsPath(ns), '--json')) as StatusJson;
  const byName = (d: DirJson | undefined, name: string): ClassJson => {
    const c = d?.classes?.find((x) => x.name === name);
    if (!c) throw new Error(`no class ${name} in ${JSON.stringify(d)}`);
    return c;
  };

  beforeAll(async () => {
    await run(process.execPath, ['packaging/build.mjs'], { timeoutMs: 60_000, env: process.env });
    ns = await makeNetns('stc');
    peer = await makeNetns('stp');
    pair = await vethPair(ns, peer);
    const net = pair.b.ipv4.split('.').slice(0, 3).join('.');
    peerA = `${net}.11`;
    peerU = `${net}.200`;
    await ipBatch(peer, [`addr add ${peerA}/24 dev ${pair.b.dev}`, `addr add ${peerU}/24 dev ${pair.b.dev}`]);
    const spec = parseAnnotations({
      'kubernetes.io/egress-bandwidth': '20M',
      'kubernetes.io/ingress-bandwidth': '20M',
      'netqos.io/egress-classes': JSON.stringify([
        { name: 'a', rate: '8M', priority: 0, match: { cidr: `${peerA}/32` } },
        { name: 'b', rate: '4M', ceil: '10M', priority: 3, match: { cidr: [`${pair.b.ipv4}/32`, `${pair.b.ipv6}/128`], protocol: 'tcp', port: 5301 } },
      ]),
      'netqos.io/ingress-classes': JSON.stringify([{ name: 'web', rate: '5M', match: { cidr: peerA } }]),
      'netqos.io/unshaped-subnets': `${peerU}/32`,
    });
    await applyQos(nsRef(ns), spec!, { caps: { fqCodel: false, clsact: false } });
  }, 90_000);

  afterAll(async () => {
    await cleanupAll();
  });

  root.it('lists every class with its match, rate, ceil and prio (JSON and table)', async () => {
    const s = await status();
    const eth0 = s.interfaces.find((i) => i.name === pair.a.dev);
    expect(eth0?.egress.classes?.map((c) => [c.classid, c.name, c.match, c.rateBps, c.ceilBps, c.prio])).toEqual([
      ['4e51:11', '#1', [`${peerA}/32`], 8e6, 8e6, 0],
      ['4e51:12', '#2', [`${pair.b.ipv4}/32 tcp port 5301`, `${cidrOf(`${pair.b.ipv6}/128`).text} tcp port 5301`], 4e6, 10e6, 3],
      ['4e51:10', 'default', [], 8e6, 20e6, 7],
      ['4e51:2', 'unshaped', [`${peerU}/32`], 100e9, 100e9, 0],
    ]);
    expect(eth0?.ingress.classes?.map((c) => [c.classid, c.name, c.match, c.rateBps, c.ceilBps, c.prio])).toEqual([
      ['4e51:11', '#1', [`${peerA}/32`], 5e6, 5e6, 7],
      ['4e51:10', 'default', [], 15e6, 20e6, 7],
    ]);
    expect(eth0?.ingress.unshaped).toEqual([`${peerU}/32`]);
    for (const c of [...(eth0?.egress.classes ?? []), ...(eth0?.ingress.classes ?? [])]) {
      expect(Object.keys(c.counters).sort()).toEqual(['backlog', 'bytes', 'drops', 'overlimits', 'packets']);
    }
    const table = await cli('status', '--netns', nsPath(ns));
    expect(table).toMatch(/^INTERFACE\s+DIRECTION\s+CLASS\s+NAME\s+MATCH\s+RATE\s+CEIL\s+PRIO\s+BYTES\s+PACKETS\s+DROPS\s+OVERLIMITS\s+BACKLOG$/m);
    for (const id of ['4e51:11', '4e51:12', '4e51:10', '4e51:2']) expect(table).toMatch(new RegExp(`^${pair.a.dev}\\s+egress\\s+${id}\\s`, 'm'));
    expect(table).toMatch(new RegExp(`^${pair.a.dev}\\s+ingress\\s+-\\s+unshaped\\s+${peerU.replace(/\./g, '\\.')}/32`, 'm'));
  }, 30_000);

  for (const dir of ['egress', 'ingress'] as const) {
    root.it(`${dir}: a 3 s flow with peer A grows class #1's counters, not the others'`, async () => {
      const before = await status();
      const server = await iperfServer(peer, peerA, { port: 5302 });
      try {
        const r = await iperfClient(ns, server, { seconds: 3, reverse: dir === 'ingress' });
        expect(r.receivedBps).toBeGreaterThan(0);
      } finally {
        await server.stop();
      }
      const after = await status();
      const d = (s: StatusJson): DirJson | undefined => s.interfaces.find((i) => i.name === pair.a.dev)?.[dir];
      const grew = (name: string): number => byName(d(after), name).counters.bytes - byName(d(before), name).counters.bytes;
      const rate = dir === 'egress' ? 8e6 : 5e6;
      const why = `${dir}: #1 +${grew('#1')} B, default +${grew('default')} B`;
      process.stdout.write(`[status-classes] ${why}\n`);
      // 3 s at the class rate is rate*3/8 bytes; at least half of it, at most the rate allows (+ the burst)
      expect(grew('#1'), why).toBeGreaterThan((rate * 3) / 8 / 2);
      expect(grew('#1'), why).toBeLessThan((rate * 3.5) / 8);
      expect(byName(d(after), '#1').counters.packets).toBeGreaterThan(byName(d(before), '#1').counters.packets);
      // the default class saw at most the flow's ACKs / ARP (tens of kB), not the flow itself
      expect(grew('default'), why).toBeLessThan(grew('#1') / 10);
      if (dir === 'egress') expect(grew('#2'), why).toBe(0);
    }, 60_000);
  }
});
