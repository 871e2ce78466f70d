/** Parses `ip -json -details link show` into Links. Pure. */
import { NetqosError } from '../domain/errors.js';
import type { Link, LinkKind } from '../domain/link.js';
import { LEGACY_GSO_MAX } from './params.js';

interface IpLinkJson {
  ifindex?: number;
  ifname?: string;
  flags?: string[];
  mtu?: number;
  qdisc?: string;
  link_type?: string;
  gso_max_size?: number;
  tso_max_size?: number;
  parentbus?: string;
  parentdev?: string;
  linkinfo?: { info_kind?: string; info_slave_kind?: string };
}

const KINDS: Record<string, LinkKind> = {
  veth: 'veth',
  macvlan: 'macvlan',
  macvtap: 'macvlan',
  ipvlan: 'ipvlan',
  ipvtap: 'ipvlan',
  ifb: 'ifb',
};

export function classify(j: IpLinkJson): LinkKind {
  if (j.link_type === 'loopback' || j.ifname === 'lo') return 'loopback';
  const kind = j.linkinfo?.info_kind;
  if (kind !== undefined) return KINDS[kind] ?? 'other';
  // no link kind: a device driven by hardware; refined to 'vf' by the SR-IOV sysfs probe
  return j.parentbus !== undefined ? 'physical' : 'other';
}

export function parseIpLinks(text: string): Link[] {
  let rows: unknown;
  try {
    rows = JSON.parse(text);
  } catch (e) {
    throw new NetqosError('KERNEL', `ip -json link show printed something that is not JSON: ${JSON.stringify(text.slice(0, 80))}`, {
      cause: e,
    });
  }
  if (!Array.isArray(rows)) throw new NetqosError('KERNEL', 'ip -json link show did not print a JSON array');
  return (rows as IpLinkJson[])
    .filter((j) => typeof j.ifname === 'string' && typeof j.ifindex === 'number')
    .map((j) => ({
      name: j.ifname as string,
      index: j.ifindex as number,
      kind: classify(j),
      mtu: j.mtu ?? 1500,
      up: (j.flags ?? []).includes('UP'),
      gsoMaxSize: j.gso_max_size ?? LEGACY_GSO_MAX,
      tsoMaxSize: j.tso_max_size ?? LEGACY_GSO_MAX,
      ...(j.parentdev !== undefined ? { parentDev: j.parentdev } : {}),
      ...(j.qdisc !== undefined ? { rootQdisc: j.qdisc } : {}),
    }));
}
