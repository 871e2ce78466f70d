/**
 * parseIpLinks / classify against `ip -json -details link show` as the kernel printed it
 * (test/fixtures/kernel/, see README.txt there) and as upstream iproute2 prints devices this
 * kernel cannot create (*.handmade.json).
 */
import { describe, expect, it } from 'vitest';
import { NetqosError } from '../../src/domain/errors.js';
import type { Link } from '../../src/domain/link.js';
import { classify, parseIpLinks } from '../../src/plan/parse-ip.js';
import { fixture, handmade } from '../support/kernel-fixtures.js';

/** a hand-written fixture's `stdout`, serialised the way ip prints it (one line) */
const byName = (links: Link[], name: string): Link => {
  const l = links.find((x) => x.name === name);
  if (!l) throw new Error(`no link ${name} in ${links.map((x) => x.name).join(', ')}`);
  return l;
};

describe('parseIpLinks: recorded kernel output', () => {
  it('veth container: lo and the veth, every field', () => {
    expect(parseIpLinks(fixture('ip-link-veth.json'))).toEqual([
      { name: 'lo', index: 1, kind: 'loopback', mtu: 65536, up: true, gsoMaxSize: 65536, tsoMaxSize: 524280, rootQdisc: 'noqueue' },
      { name: 'nqtc0', index: 2, kind: 'veth', mtu: 1500, up: true, gsoMaxSize: 65536, tsoMaxSize: 524280, rootQdisc: 'noqueue' },
    ]);
  });

  it('shaped veth container: the capped gso_max_size and our ifb', () => {
    const links = parseIpLinks(fixture('ip-link-veth-shaped.json'));
    expect(links.map((l) => [l.name, l.index, l.kind])).toEqual([
      ['lo', 1, 'loopback'],
      ['nqtc0', 2, 'veth'],
      ['nqi2', 3, 'ifb'],
    ]);
    expect(byName(links, 'nqtc0').gsoMaxSize).toBe(3028);
    // the kernel's default stays visible: what restoreGso goes back to
    expect(byName(links, 'nqtc0').tsoMaxSize).toBe(524280);
    expect(byName(links, 'nqi2')).toMatchObject({ mtu: 1500, up: true, gsoMaxSize: 65536 });
  });

  it('macvlan moved into a container keeps its ifindex (6), and is a macvlan', () => {
    const links = parseIpLinks(fixture('ip-link-macvlan.json'));
    expect(byName(links, 'nqtm0')).toEqual({
      name: 'nqtm0',
      index: 6,
      kind: 'macvlan',
      mtu: 1500,
      up: true,
      gsoMaxSize: 65536,
      tsoMaxSize: 524280,
      rootQdisc: 'noqueue',
    });
    // our ifb for it is nqi6, which itself got the lowest free ifindex of the namespace
    const shaped = parseIpLinks(fixture('ip-link-macvlan-shaped.json'));
    expect(byName(shaped, 'nqi6')).toMatchObject({ index: 2, kind: 'ifb' });
  });

  it('host side: a bridge is "other", its veth port is still a veth, a veth pair in one namespace', () => {
    const links = parseIpLinks(fixture('ip-link-host-bridge.json'));
    expect(links.map((l) => [l.name, l.kind])).toEqual([
      ['lo', 'loopback'],
      ['nqth0', 'veth'], // info_kind veth + info_slave_kind bridge
      ['nqtbr0', 'other'],
      ['nqtp1', 'veth'],
      ['nqtp0', 'veth'],
      ['nqth1', 'veth'],
      ['nqth2', 'veth'],
    ]);
  });

  it('two veths with different MTUs and someone else\'s ifb', () => {
    const links = parseIpLinks(fixture('ip-link-two-veth-foreign.json'));
    expect(links.map((l) => [l.name, l.kind, l.mtu])).toEqual([
      ['lo', 'loopback', 65536],
      ['nqtd0', 'veth', 1500],
      ['nqtd1', 'veth', 9000],
      ['nqtx0', 'ifb', 1500],
    ]);
  });

  it('a namespace with only lo, down', () => {
    expect(parseIpLinks(fixture('ip-link-lo-only.json'))).toEqual([
      { name: 'lo', index: 1, kind: 'loopback', mtu: 65536, up: false, gsoMaxSize: 65536, tsoMaxSize: 524280, rootQdisc: 'noop' },
    ]);
  });
});

describe('parseIpLinks: upstream shapes of devices this kernel lacks (hand-written)', () => {
  it('ipvlan slave (L3 mode)', () => {
    const links = parseIpLinks(handmade('ip-link-ipvlan.handmade.json'));
    expect(byName(links, 'eth0')).toEqual({
      name: 'eth0',
      index: 5,
      kind: 'ipvlan',
      mtu: 1500,
      up: true,
      gsoMaxSize: 65536,
      tsoMaxSize: 65536,
      rootQdisc: 'noqueue',
    });
  });

  it('SR-IOV VF: no link kind, a PCI parent -> physical with parentDev; the pod veth beside it', () => {
    const links = parseIpLinks(handmade('ip-link-sriov-vf.handmade.json'));
    expect(byName(links, 'net1')).toEqual({
      name: 'net1',
      index: 27,
      kind: 'physical',
      mtu: 9000,
      up: true,
      gsoMaxSize: 65536,
      tsoMaxSize: 65536,
      parentDev: '0000:3b:02.1',
      rootQdisc: 'mq',
    });
    expect(byName(links, 'eth0')).toMatchObject({ kind: 'veth', mtu: 1450 });
    expect(byName(links, 'eth0').parentDev).toBeUndefined();
  });

  it('physical NIC with a TSO limit below 64 KiB (r8169: 64000)', () => {
    const nic = byName(parseIpLinks(handmade('ip-link-physical-r8169.handmade.json')), 'enp3s0');
    expect(nic).toMatchObject({ kind: 'physical', gsoMaxSize: 64000, tsoMaxSize: 64000, parentDev: '0000:03:00.0' });
  });

  it('dummy is "other"; output without tso_max_size (pre-5.19) defaults both sizes to 65536', () => {
    const links = parseIpLinks(handmade('ip-link-dummy-legacy.handmade.json'));
    expect(byName(links, 'dummy0').kind).toBe('other');
    expect(byName(links, 'eth0')).toEqual({
      name: 'eth0',
      index: 7,
      kind: 'veth',
      mtu: 1500,
      up: true,
      gsoMaxSize: 65536,
      tsoMaxSize: 65536,
      rootQdisc: 'noqueue',
    });
  });
});

describe('classify', () => {
  const cases: Array<[string, Parameters<typeof classify>[0], string]> = [
    ['lo by link_type', { ifname: 'lo', link_type: 'loopback' }, 'loopback'],
    ['a loopback under another name', { ifname: 'lo2', link_type: 'loopback' }, 'loopback'],
    ['lo by name alone', { ifname: 'lo' }, 'loopback'],
    ['veth', { ifname: 'x', linkinfo: { info_kind: 'veth' } }, 'veth'],
    ['veth enslaved to a bridge', { ifname: 'x', linkinfo: { info_kind: 'veth', info_slave_kind: 'bridge' } }, 'veth'],
    ['macvlan', { ifname: 'x', linkinfo: { info_kind: 'macvlan' } }, 'macvlan'],
    ['macvtap', { ifname: 'x', linkinfo: { info_kind: 'macvtap' } }, 'macvlan'],
    ['ipvlan', { ifname: 'x', linkinfo: { info_kind: 'ipvlan' } }, 'ipvlan'],
    ['ipvtap', { ifname: 'x', linkinfo: { info_kind: 'ipvtap' } }, 'ipvlan'],
    ['ifb', { ifname: 'x', linkinfo: { info_kind: 'ifb' } }, 'ifb'],
    ['bridge', { ifname: 'x', linkinfo: { info_kind: 'bridge' } }, 'other'],
    ['vxlan', { ifname: 'x', linkinfo: { info_kind: 'vxlan' } }, 'other'],
    ['dummy', { ifname: 'x', linkinfo: { info_kind: 'dummy' } }, 'other'],
    ['PCI device', { ifname: 'x', link_type: 'ether', parentbus: 'pci', parentdev: '0000:01:00.0' }, 'physical'],
    ['USB device', { ifname: 'x', link_type: 'ether', parentbus: 'usb', parentdev: '2-1:1.0' }, 'physical'],
    ['no kind, no bus (e.g. a tun with no linkinfo)', { ifname: 'x', link_type: 'none' }, 'other'],
  ];
  it.each(cases)('%s', (_what, json, kind) => {
    expect(classify(json)).toBe(kind);
  });
});

describe('parseIpLinks: defaults and malformed input', () => {
  it('rows without ifname or ifindex are dropped; mtu defaults to 1500, missing flags mean down', () => {
    const text = JSON.stringify([{ ifindex: 3 }, { ifname: 'ghost' }, { ifindex: 4, ifname: 'x0', linkinfo: { info_kind: 'veth' } }]);
    expect(parseIpLinks(text)).toEqual([
      { name: 'x0', index: 4, kind: 'veth', mtu: 1500, up: false, gsoMaxSize: 65536, tsoMaxSize: 65536 },
    ]);
  });

  it('an empty array is a namespace without links, not an error', () => {
    expect(parseIpLinks('[]')).toEqual([]);
  });

  const malformed: Array<[string, string]> = [
    ['empty output', ''],
    ['an error message instead of JSON', 'Cannot open network namespace "nqt-gone": No such file or directory'],
    ['truncated JSON', fixture('ip-link-veth.json').slice(0, 300)],
    // `ip -json -pretty` (or a dying ip) can print newlines: the message must stay one line
    ['truncated pretty JSON', '[ {\n    "ifindex": 1,\n    "ifname": "lo",\n    "flags": [ "LOOPBACK",'],
    ['an error and a second line', 'Error: Peer netns reference is invalid.\nWe have an error talking to the kernel\n'],
  ];
  it.each(malformed)('%s -> NetqosError KERNEL with a one-line message', (_what, text) => {
    let err: unknown;
    try {
      parseIpLinks(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NetqosError);
    expect((err as NetqosError).code).toBe('KERNEL');
    expect((err as NetqosError).message).toMatch(/ip -json link show printed something that is not JSON/);
    expect((err as NetqosError).message).not.toContain('\n');
    expect((err as NetqosError).message).not.toContain('\r');
    expect((err as NetqosError).cause).toBeInstanceOf(SyntaxError);
  });

  it('the bad output is quoted as a JSON string: newlines shown as \\n, at most 80 characters of it', () => {
    const bad = `[ {\n    "ifindex": 1,\n    "ifname": "lo",\n${' '.repeat(100)}"tail-not-shown"`;
    let message = '';
    try {
      parseIpLinks(bad);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toBe(`ip -json link show printed something that is not JSON: ${JSON.stringify(bad.slice(0, 80))}`);
    expect(message).toContain('[ {\\n    \\"ifindex\\": 1,');
    expect(message).not.toContain('tail-not-shown');
  });

  it('JSON that is not an array -> KERNEL', () => {
    expect(() => parseIpLinks('{"ifindex":1}')).toThrow(expect.objectContaining({ code: 'KERNEL', message: expect.stringMatching(/not print a JSON array/) }));
  });
});
