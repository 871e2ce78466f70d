/**
 * vethShaping "host", pure: names from identity, the alias, finding the host peer from both
 * sides, the apply / remove plans as rendered batch text, and gc's choice of orphans. Observed
 * states are built the way `ip -json -details link show` reports a veth pair between a container
 * namespace (eth0, ifindex 3001, peer 3000 in netns id 0) and the node (vethab12, ifindex 3000,
 * peer 3001 in netns id 4); checked against the kernel in test/integration/host-side.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { NetqosError } from '../../src/domain/errors.js';
import { MINIMAL_CAPS, type Filter, type Link, type LinkPeer, type Observed, type Qdisc } from '../../src/domain/link.js';
import { confirmed, findOrphans, planGc } from '../../src/plan/host-gc.js';
import { checkIdentity, fnv1a64, formatHostAlias, hostIfbName, isHostIfbName, parseHostAlias } from '../../src/plan/host-names.js';
import { findHostPeer, parseLinkPeers } from '../../src/plan/host-peer.js';
import { planHostApply, planHostRemove } from '../../src/plan/host-side.js';
import { isOurFilter } from '../../src/plan/ingress-hook.js';
import type { Plan } from '../../src/plan/ops.js';
import { renderIp, renderTc } from '../../src/plan/render.js';

const ID = '3f1c2a9b7d10aa';
const IFB = hostIfbName(ID, 'eth0');
const ALIAS = `netqos:h1:${ID}:eth0:3000:vethab12`;

const link = (name: string, index: number, kind: Link['kind'], extra: Partial<Link> = {}): Link => ({
  name,
  index,
  kind,
  mtu: 1500,
  up: true,
  gsoMaxSize: 65536,
  tsoMaxSize: 524280,
  ...extra,
});
const text = (p: Plan) => ({ ip: renderIp(p.ip), tc: renderTc(p.tc), ipAfter: renderIp(p.ipAfter) });

function containerNs(extra: { links?: Link[]; peers?: LinkPeer[]; qdiscs?: Qdisc[]; filters?: Filter[] } = {}): Observed {
  return {
    links: [link('lo', 1, 'loopback', { mtu: 65536 }), link('eth0', 3001, 'veth'), ...(extra.links ?? [])],
    peers: [{ name: 'lo', index: 1 }, { name: 'eth0', index: 3001, peerIndex: 3000, peerNetnsId: 0 }, ...(extra.peers ?? [])],
    qdiscs: [{ dev: 'eth0', kind: 'noqueue', handle: '0:', parent: 'root' }, ...(extra.qdiscs ?? [])],
    filters: extra.filters ?? [],
  };
}

function nodeNs(extra: { links?: Link[]; peers?: LinkPeer[]; qdiscs?: Qdisc[]; filters?: Filter[] } = {}): Observed {
  return {
    links: [link('lo', 1, 'loopback', { mtu: 65536 }), link('eth9', 2, 'physical'), link('vethab12', 3000, 'veth'), ...(extra.links ?? [])],
    peers: [
      { name: 'lo', index: 1 },
      { name: 'eth9', index: 2 },
      { name: 'vethab12', index: 3000, peerIndex: 3001, peerNetnsId: 4 },
      ...(extra.peers ?? []),
    ],
    qdiscs: [{ dev: 'vethab12', kind: 'noqueue', handle: '0:', parent: 'root' }, ...(extra.qdiscs ?? [])],
    filters: extra.filters ?? [],
  };
}

/** the node after a full apply of egress 10M / ingress 20M */
function shapedNode(extra: { links?: Link[]; peers?: LinkPeer[] } = {}): Observed {
  return nodeNs({
    links: [link(IFB, 3005, 'ifb'), ...(extra.links ?? [])],
    peers: [{ name: IFB, index: 3005, alias: ALIAS }, ...(extra.peers ?? [])],
    // each tree: root (default 10), bulk 4e51:10 and small-packet 4e51:3 leaves, the small-packet filters
    qdiscs: [
      { dev: 'vethab12', kind: 'htb', handle: '4e51:', parent: 'root', options: { r2q: 10, default: '0x10' } },
      { dev: 'vethab12', kind: 'bfifo', handle: '5010:', parent: '4e51:10' },
      { dev: 'vethab12', kind: 'bfifo', handle: '5003:', parent: '4e51:3' },
      { dev: 'vethab12', kind: 'ingress', handle: 'ffff:', parent: 'ffff:fff1' },
      { dev: IFB, kind: 'htb', handle: '4e51:', parent: 'root', options: { r2q: 10, default: '0x10' } },
      { dev: IFB, kind: 'bfifo', handle: '5010:', parent: '4e51:10' },
      { dev: IFB, kind: 'bfifo', handle: '5003:', parent: '4e51:3' },
    ],
    filters: [
      { dev: 'vethab12', parent: 'ffff:', prio: 49, handle: '800::800', kind: 'u32', redirectTo: IFB },
      ...[IFB, 'vethab12'].flatMap((dev): Filter[] => [
        { dev, parent: '4e51:', prio: 3, handle: '800::800', kind: 'u32', protocol: 'ip', flowid: '4e51:3', keys: ['00000000/0000ff00@0'] },
        { dev, parent: '4e51:', prio: 4, handle: '801::800', kind: 'u32', protocol: 'ipv6', flowid: '4e51:3', keys: ['00000000/ff000000@4'] },
      ]),
    ],
  });
}

describe('names and aliases', () => {
  it('the ifb name is nqh + 12 hex of the identity and the interface: 15 characters, stable, distinct', () => {
    expect(IFB).toMatch(/^nqh[0-9a-f]{12}$/);
    expect(IFB).toHaveLength(15);
    expect(hostIfbName(ID, 'eth0')).toBe(IFB);
    expect(hostIfbName(ID, 'net1')).not.toBe(IFB);
    expect(hostIfbName('3f1c2a9b7d10ab', 'eth0')).not.toBe(IFB);
    // FNV-1a 64 of "3f1c2a9b7d10aa\0eth0" is 79ace94118a36fd7 (computed independently in Python),
    // pinned: a change of the scheme would orphan every ifb on upgrade
    expect(IFB).toBe('nqhe94118a36fd7');
    // the published FNV-1a 64 test vectors
    expect(fnv1a64('').toString(16)).toBe('cbf29ce484222325');
    expect(fnv1a64('a').toString(16)).toBe('af63dc4c8601ec8c');
    expect(fnv1a64('foobar').toString(16)).toBe('85944171f73967e8');
    expect(isHostIfbName(IFB)).toBe(true);
    for (const n of ['nqi3', 'nqhe94118a36fd', 'nqhE94118A36FD7', 'ifb0', 'bwp0123456789ab']) expect(isHostIfbName(n)).toBe(false);
  });

  it('the alias round-trips; anything else is not ours', () => {
    const a = { identity: ID, containerIf: 'eth0', peerIndex: 3000, peerName: 'vethab12' };
    expect(formatHostAlias(a)).toBe(ALIAS);
    expect(parseHostAlias(ALIAS)).toEqual(a);
    for (const bad of [undefined, '', 'netqos:h1:', 'netqos:h2:x:eth0:1:v', `netqos:h1:${ID}:eth0:0:v`, `netqos:h1:${ID}:eth0:3000`, 'uplink to rack 3']) {
      expect(parseHostAlias(bad)).toBeUndefined();
    }
  });

  it('identities: container ids, sandbox ids and names pass; anything that could break the alias does not', () => {
    expect(checkIdentity('a'.repeat(64))).toBe('a'.repeat(64));
    expect(checkIdentity('web-1.pod_x')).toBe('web-1.pod_x');
    for (const bad of ['', 'a:b', 'a b', '-x', 'a'.repeat(129), 'x/y']) {
      expect(() => checkIdentity(bad)).toThrow(/invalid container identity .*: use 1 to 128 letters/);
    }
  });

  it('a redirect to an nqh ifb is ours (so container-side removal code recognises it too)', () => {
    expect(isOurFilter({ dev: 'v', parent: 'ffff:', prio: 49, handle: '800::800', kind: 'u32', redirectTo: IFB })).toBe(true);
    expect(isOurFilter({ dev: 'v', parent: 'ffff:', prio: 49, handle: '800::800', kind: 'u32', redirectTo: 'ifb0' })).toBe(false);
  });
});

describe('parseLinkPeers and findHostPeer', () => {
  it('reads link_index, link_netnsid and ifalias as ip prints them', () => {
    const json = JSON.stringify([
      { ifindex: 1, ifname: 'lo' },
      { ifindex: 3000, link_index: 3001, ifname: 'vethab12', link_netnsid: 4, linkinfo: { info_kind: 'veth' } },
      { ifindex: 3005, ifname: IFB, ifalias: ALIAS, linkinfo: { info_kind: 'ifb' } },
    ]);
    expect(parseLinkPeers(json)).toEqual([
      { name: 'lo', index: 1 },
      { name: 'vethab12', index: 3000, peerIndex: 3001, peerNetnsId: 4 },
      { name: IFB, index: 3005, alias: ALIAS },
    ]);
  });

  it('finds the node end when both ends point at each other', () => {
    const c = containerNs();
    expect(findHostPeer(c.links[1]!, c, nodeNs()).name).toBe('vethab12');
  });

  const refusals: Array<[string, Observed, Observed, RegExp]> = [
    ['the peer is in the container itself', { ...containerNs(), peers: [{ name: 'eth0', index: 3001, peerIndex: 3000 }] }, nodeNs(), /its peer \(ifindex 3000\) is in the container's own namespace/],
    ['no link of that index on the node', containerNs(), { ...nodeNs(), links: nodeNs().links.filter((l) => l.index !== 3000) }, /is not in the node's namespace/],
    [
      'the node link of that index is another veth pair',
      containerNs(),
      { ...nodeNs(), peers: [{ name: 'vethab12', index: 3000, peerIndex: 7, peerNetnsId: 4 }] },
      /ifindex 3000 in the node's namespace is vethab12 \(veth\), which is not eth0's peer/,
    ],
    ['the node link of that index is not a veth', containerNs(), { ...nodeNs(), links: [link('br0', 3000, 'other')], peers: [{ name: 'br0', index: 3000, peerIndex: 3001, peerNetnsId: 1 }] }, /is br0 \(other\)/],
  ];
  it.each(refusals)('refuses: %s', (_what, c, n, why) => {
    let err: unknown;
    try {
      findHostPeer(c.links[1]!, c, n);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NetqosError);
    expect((err as NetqosError).message).toMatch(/^vethShaping is "host" but eth0 cannot be shaped on the node: /);
    expect((err as NetqosError).message).toMatch(why);
    expect((err as NetqosError).message).toMatch(/set vethShaping to "container"/);
  });
});

describe('planHostApply: golden text', () => {
  const input = (spec: Parameters<typeof planHostApply>[0]['spec'], container = containerNs(), host = nodeNs()) =>
    planHostApply({ identity: ID, spec, container, host, caps: MINIMAL_CAPS });

  it('fresh veth, egress 10M ingress 20M: an ifb with its alias on the node, the redirect, two trees; nothing in the container', () => {
    const p = input({ egress: { rateBps: 10e6 }, ingress: { rateBps: 20e6 } });
    expect(text(p.host)).toEqual({
      ip: `link add ${IFB} mtu 1500 up type ifb\nlink set dev ${IFB} alias ${ALIAS}\n`,
      tc: [
        `qdisc replace dev ${IFB} root handle 4e51: htb default 10`,
        `class replace dev ${IFB} parent 4e51: classid 4e51:1 htb rate 10000000bit ceil 10000000bit burst 12500b cburst 12500b quantum 1514`,
        `class replace dev ${IFB} parent 4e51:1 classid 4e51:10 htb rate 9500000bit ceil 10000000bit burst 11875b cburst 12500b prio 1 quantum 1514`,
        `qdisc replace dev ${IFB} parent 4e51:10 handle 5010: bfifo limit 132586`,
        `class replace dev ${IFB} parent 4e51:1 classid 4e51:3 htb rate 500000bit ceil 10000000bit burst 3028b cburst 12500b prio 0 quantum 1514`,
        `qdisc replace dev ${IFB} parent 4e51:3 handle 5003: bfifo limit 6250`,
        `filter add dev ${IFB} parent 4e51: protocol ip prio 3 u32 match u16 0 0xff00 at 2 flowid 4e51:3`,
        `filter add dev ${IFB} parent 4e51: protocol ipv6 prio 4 u32 match u16 0 0xff00 at 4 flowid 4e51:3`,
        'qdisc add dev vethab12 handle ffff: ingress',
        `filter add dev vethab12 parent ffff: protocol all prio 49 u32 match u32 0 0 action mirred egress redirect dev ${IFB}`,
        'qdisc replace dev vethab12 root handle 4e51: htb default 10',
        'class replace dev vethab12 parent 4e51: classid 4e51:1 htb rate 20000000bit ceil 20000000bit burst 25000b cburst 25000b quantum 2500',
        'class replace dev vethab12 parent 4e51:1 classid 4e51:10 htb rate 19000000bit ceil 20000000bit burst 23750b cburst 25000b prio 1 quantum 2375',
        'qdisc replace dev vethab12 parent 4e51:10 handle 5010: bfifo limit 132586',
        'class replace dev vethab12 parent 4e51:1 classid 4e51:3 htb rate 1000000bit ceil 20000000bit burst 3028b cburst 25000b prio 0 quantum 1514',
        'qdisc replace dev vethab12 parent 4e51:3 handle 5003: bfifo limit 12500',
        'filter add dev vethab12 parent 4e51: protocol ip prio 3 u32 match u16 0 0xff00 at 2 flowid 4e51:3',
        'filter add dev vethab12 parent 4e51: protocol ipv6 prio 4 u32 match u16 0 0xff00 at 4 flowid 4e51:3',
        '',
      ].join('\n'),
      ipAfter: '',
    });
    expect(text(p.container)).toEqual({ ip: '', tc: '', ipAfter: '' });
    expect(p.host.shaped.map((s) => [s.dev, s.direction, s.shapedOn, s.onNode])).toEqual([
      ['eth0', 'egress', IFB, true],
      ['eth0', 'ingress', 'vethab12', true],
    ]);
  });

  it('applying again changes nothing but the classes (in place) and the leaves', () => {
    const p = input({ egress: { rateBps: 10e6 }, ingress: { rateBps: 20e6 } }, containerNs(), shapedNode());
    expect(p.host.ip).toEqual([]);
    expect(p.host.ipAfter).toEqual([]);
    expect(p.host.tc).toHaveLength(10);
    expect(p.host.tc.every((op) => (op.object === 'class' && op.verb === 'replace') || (op.object === 'qdisc' && (op.parent === '4e51:10' || op.parent === '4e51:3')))).toBe(true);
  });

  it('egress dropped: the redirect and the ifb go, the ingress tree stays', () => {
    const p = input({ ingress: { rateBps: 20e6 } }, containerNs(), shapedNode());
    expect(renderTc(p.host.tc)).toMatch(/^qdisc del dev vethab12 ingress\n/);
    expect(renderIp(p.host.ipAfter)).toBe(`link del dev ${IFB}\n`);
    expect(renderTc(p.host.tc)).toContain('class replace dev vethab12 parent 4e51: classid 4e51:1 htb rate 20000000bit');
  });

  it('ingress dropped: only the host peer root goes', () => {
    const p = input({ egress: { rateBps: 10e6 } }, containerNs(), shapedNode());
    expect(renderTc(p.host.tc)).toContain('qdisc del dev vethab12 root\n');
    expect(p.host.ipAfter).toEqual([]);
  });

  it('the container had container-side shaping on the veth (config changed): removed there, on the node it is planned anew', () => {
    const c = containerNs({
      links: [link('nqi3001', 4, 'ifb')],
      qdiscs: [
        { dev: 'eth0', kind: 'htb', handle: '4e51:', parent: 'root' },
        { dev: 'eth0', kind: 'ingress', handle: 'ffff:', parent: 'ffff:fff1' },
      ],
      filters: [{ dev: 'eth0', parent: 'ffff:', prio: 49, handle: '800::800', kind: 'u32', redirectTo: 'nqi3001' }],
    });
    c.qdiscs = c.qdiscs.filter((q) => q.kind !== 'noqueue');
    const p = input({ egress: { rateBps: 10e6 } }, c);
    expect(text(p.container)).toEqual({ ip: '', tc: 'qdisc del dev eth0 ingress\nqdisc del dev eth0 root\n', ipAfter: 'link del dev nqi3001\n' });
  });

  it('a macvlan next to the veth is shaped in the container as always', () => {
    const c = containerNs({ links: [link('net1', 5, 'macvlan')], peers: [{ name: 'net1', index: 5, peerIndex: 9, peerNetnsId: 0 }] });
    const p = input({ egress: { rateBps: 10e6 } }, c);
    expect(renderTc(p.container.tc)).toContain('qdisc replace dev net1 root handle 4e51: htb default 10\n');
    expect(renderTc(p.container.tc)).not.toContain('eth0');
    expect(renderTc(p.host.tc)).not.toContain('net1');
  });

  it('another identity shaped this veth before: the redirect moves to ours and the old ifb goes', () => {
    const old = hostIfbName('older', 'eth0');
    const host = nodeNs({
      links: [link(old, 3004, 'ifb')],
      peers: [{ name: old, index: 3004, alias: `netqos:h1:older:eth0:3000:vethab12` }],
      qdiscs: [{ dev: 'vethab12', kind: 'ingress', handle: 'ffff:', parent: 'ffff:fff1' }],
      filters: [{ dev: 'vethab12', parent: 'ffff:', prio: 49, handle: '800::800', kind: 'u32', redirectTo: old }],
    });
    const p = input({ egress: { rateBps: 10e6 } }, containerNs(), host);
    expect(renderTc(p.host.tc)).toContain(`filter del dev vethab12 parent ffff: protocol all prio 49\nfilter add dev vethab12 parent ffff: protocol all prio 49 u32 match u32 0 0 action mirred egress redirect dev ${IFB}\n`);
    expect(renderIp(p.host.ipAfter)).toBe(`link del dev ${old}\n`);
  });

  it('refuses a host peer whose root qdisc is someone else\'s, and a device of our name that is not ours', () => {
    const tbf = nodeNs({ qdiscs: [{ dev: 'vethab12', kind: 'tbf', handle: '1:', parent: 'root' }] });
    tbf.qdiscs = tbf.qdiscs.filter((q) => q.kind !== 'noqueue');
    expect(() => input({ ingress: { rateBps: 1e6 } }, containerNs(), tbf)).toThrow(
      /eth0's peer vethab12 on the node already has a root qdisc tbf 1: that is not netqos's .*set vethShaping to "container"/,
    );
    expect(input({ egress: { rateBps: 1e6 } }, containerNs(), tbf).host.tc.some((op) => op.dev === 'vethab12' && op.object === 'qdisc' && op.parent === 'root')).toBe(false);
    const squat = nodeNs({ links: [link(IFB, 50, 'ifb')], peers: [{ name: IFB, index: 50, alias: 'netqos:h1:someoneelse:eth0:3000:vethab12' }] });
    expect(() => input({ egress: { rateBps: 1e6 } }, containerNs(), squat)).toThrow(new RegExp(`the node already has a device ${IFB} that is not the ifb of ${ID}/eth0`));
  });

  it('refuses what the node side does not plan yet instead of ignoring it', () => {
    expect(() => input({ egress: { rateBps: 1e6 }, unshapedSubnets: ['10.0.0.0/8'] })).toThrow(/shapes the direction totals only/);
  });
});

describe('planHostRemove', () => {
  it('container present: its host peer\'s redirect and root, and the ifb (golden)', () => {
    const p = planHostRemove({ identity: ID, container: containerNs(), host: shapedNode() });
    expect(text(p)).toEqual({ ip: '', tc: 'qdisc del dev vethab12 ingress\nqdisc del dev vethab12 root\n', ipAfter: `link del dev ${IFB}\n` });
  });

  it('namespace gone (the veth with it): the ifb is found by its alias alone', () => {
    const host = nodeNs({ links: [link(IFB, 3005, 'ifb')], peers: [{ name: IFB, index: 3005, alias: ALIAS }] });
    host.links = host.links.filter((l) => l.name !== 'vethab12');
    expect(text(planHostRemove({ identity: ID, host }))).toEqual({ ip: '', tc: '', ipAfter: `link del dev ${IFB}\n` });
  });

  it('by identity only, while the veth still exists: the redirect goes first', () => {
    expect(text(planHostRemove({ identity: ID, host: shapedNode() }))).toEqual({ ip: '', tc: 'qdisc del dev vethab12 ingress\n', ipAfter: `link del dev ${IFB}\n` });
  });

  it('never touches other containers\' ifbs, foreign ifbs, or devices that are not the verified peer', () => {
    const other = hostIfbName('other', 'eth0');
    const host = shapedNode({
      links: [link(other, 3009, 'ifb'), link('nqh000000000000', 3010, 'ifb'), link('ifb0', 5, 'ifb')],
      peers: [{ name: other, index: 3009, alias: 'netqos:h1:other:eth0:3007:vethcd34' }, { name: 'nqh000000000000', index: 3010 }],
    });
    const all = Object.values(text(planHostRemove({ identity: ID, container: containerNs(), host }))).join('');
    expect(all).not.toMatch(new RegExp(`${other}|nqh000000000000|ifb0|eth9`));
    expect(text(planHostRemove({ identity: 'nobody', host: nodeNs() }))).toEqual({ ip: '', tc: '', ipAfter: '' });
  });
});

describe('gc', () => {
  const orphanOf = (name: string, index: number, alias: string) => ({ links: [link(name, index, 'ifb')], peers: [{ name, index, alias }] });

  it('a live shaped veth is no orphan; a gone veth, a replaced veth and a missing redirect are; foreign ifbs are never', () => {
    const gone = hostIfbName('gone', 'eth0');
    const renamed = hostIfbName('renamed', 'eth0');
    const unredirected = hostIfbName('idle', 'eth0');
    const a = orphanOf(gone, 3020, 'netqos:h1:gone:eth0:2999:vethgone');
    const b = orphanOf(renamed, 3021, 'netqos:h1:renamed:eth0:3000:vethold');
    const c = orphanOf(unredirected, 3022, 'netqos:h1:idle:eth0:3000:vethab12');
    const host = shapedNode({
      links: [...a.links, ...b.links, ...c.links, link('nqh111111111111', 3030, 'ifb'), link('ifb0', 5, 'ifb'), link('nqhfff', 3031, 'ifb')],
      peers: [...a.peers, ...b.peers, ...c.peers, { name: 'nqh111111111111', index: 3030, alias: 'not ours' }, { name: 'nqhfff', index: 3031, alias: 'netqos:h1:x:eth0:1:v' }],
    });
    const orphans = findOrphans(host);
    expect(orphans.map((o) => [o.ifb, o.identity, o.reason])).toEqual([
      [gone, 'gone', 'its veth vethgone (ifindex 2999) is gone'],
      [renamed, 'renamed', 'its veth vethold (ifindex 3000) is gone'],
      [unredirected, 'idle', 'nothing redirects to it (vethab12 has no redirect of ours to it)'],
    ]);
    expect(renderIp(planGc(orphans).ipAfter)).toBe(`link del dev ${gone}\nlink del dev ${renamed}\nlink del dev ${unredirected}\n`);
  });

  it('only what was an orphan in both looks, as the same device, is removed', () => {
    const o = { ifb: IFB, ifindex: 3005, identity: ID, containerIf: 'eth0', reason: 'x' };
    expect(confirmed([o], [o])).toEqual([o]);
    expect(confirmed([o], [])).toEqual([]);
    expect(confirmed([o], [{ ...o, ifindex: 3006 }])).toEqual([]); // re-created meanwhile
    expect(confirmed([], [o])).toEqual([]);
  });
});
