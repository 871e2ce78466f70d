/**
 * A container's veth and its peer in the node's namespace, found from both sides. Pure.
 *
 * The container side says where its peer is: `link_index` (the peer's ifindex) and
 * `link_netnsid` (the peer's namespace, as the container numbers it). The node side must then
 * hold a veth with that ifindex whose own peer is the container's device (its `link_index` is
 * the device's ifindex, and it has a `link_netnsid`: its peer is in another namespace). Netns ids
 * are private to each namespace and iproute2 cannot name an unnamed one, so the two pointers
 * must agree; anything else is refused, never guessed.
 */
import { NetqosError } from '../domain/errors.js';
import type { Link, LinkPeer, Observed } from '../domain/link.js';

interface IpLinkPeerJson {
  ifindex?: number;
  ifname?: string;
  link_index?: number;
  link_netnsid?: number;
  ifalias?: string;
}

/** The peer fields of `ip -json -details link show` output (already validated by parseIpLinks). */
export function parseLinkPeers(text: string): LinkPeer[] {
  let rows: unknown;
  try {
    rows = JSON.parse(text);
  } catch {
    return [];
  }
  if (!Array.isArray(rows)) return [];
  return (rows as IpLinkPeerJson[])
    .filter((j) => typeof j.ifname === 'string' && typeof j.ifindex === 'number')
    .map((j) => ({
      name: j.ifname as string,
      index: j.ifindex as number,
      ...(typeof j.link_index === 'number' ? { peerIndex: j.link_index } : {}),
      ...(typeof j.link_netnsid === 'number' ? { peerNetnsId: j.link_netnsid } : {}),
      ...(typeof j.ifalias === 'string' && j.ifalias !== '' ? { alias: j.ifalias } : {}),
    }));
}

export const peerOf = (o: Observed, name: string): LinkPeer | undefined => o.peers?.find((p) => p.name === name);

/**
 * The node-side veth of a container's veth, or a NetqosError saying why there is none.
 * `container` and `host` must carry peers (discover() reads them).
 */
export function findHostPeer(dev: Link, container: Observed, host: Observed): Link {
  const mine = peerOf(container, dev.name);
  const refuse = (why: string): NetqosError =>
    new NetqosError(
      'UNSUPPORTED',
      `vethShaping is "host" but ${dev.name} cannot be shaped on the node: ${why}; set vethShaping to "container", or name other interfaces in netqos.io/interfaces`,
    );
  if (dev.kind !== 'veth') throw refuse(`it is a ${dev.kind}, not a veth`);
  if (mine?.peerIndex === undefined) throw refuse('the kernel names no peer for it');
  if (mine.peerNetnsId === undefined) throw refuse(`its peer (ifindex ${mine.peerIndex}) is in the container's own namespace`);
  const hostLink = host.links.find((l) => l.index === mine.peerIndex);
  const hostPeer = peerOf(host, hostLink?.name ?? '');
  if (hostLink === undefined || hostPeer === undefined) {
    throw refuse(`its peer (ifindex ${mine.peerIndex}) is not in the node's namespace (a CNI that nests namespaces?)`);
  }
  if (hostLink.kind !== 'veth' || hostPeer.peerIndex !== dev.index || hostPeer.peerNetnsId === undefined) {
    throw refuse(`ifindex ${mine.peerIndex} in the node's namespace is ${hostLink.name} (${hostLink.kind}), which is not ${dev.name}'s peer`);
  }
  return hostLink;
}
