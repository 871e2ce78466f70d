/**
 * Names of netqos's objects in the node's namespace (vethShaping "host"), derived from the
 * container's identity so that teardown needs no state and two containers never share one.
 *
 * The ifb of a container's veth is `nqh` + the low 48 bits (12 hex digits) of the 64-bit FNV-1a
 * hash of "identity NUL ifname": 15 characters, the kernel's limit. With n such ifbs on a node,
 * the chance that any two collide is about n^2 / 2^49 (1e-9 at 1000 containers, 1.8e-7 at
 * 10 000). A collision is never silent: the ifb also carries an alias naming its owner (below),
 * and the planner refuses an ifb of that name that belongs to someone else, so a cryptographic
 * hash buys nothing here; loading node:crypto cost the OCI hook 1.5 ms on every container start
 * (measured with --cpu-prof), where FNV-1a is a few lines.
 *
 * The alias `netqos:h1:<identity>:<container ifname>:<host peer ifindex>:<host peer name>` is how
 * teardown finds a container's ifbs without its namespace (podman's poststop comes after the
 * namespace is gone) and how `netqos gc` tells whether the veth it served still exists. Ifnames
 * cannot contain ':' (the kernel refuses them) and identities are checked below, so the fields
 * split unambiguously.
 */
import { NetqosError } from '../domain/errors.js';

export const HOST_IFB_PREFIX = 'nqh';
export const isHostIfbName = (name: string): boolean => /^nqh[0-9a-f]{12}$/.test(name);

/** container ids, pod sandbox ids, podman names: what a front end may use as an identity */
const IDENTITY = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export function checkIdentity(identity: string, what = 'container identity'): string {
  if (!IDENTITY.test(identity)) {
    throw new NetqosError(
      'INVALID_ARGUMENT',
      `invalid ${what} ${JSON.stringify(identity.slice(0, 80))}: use 1 to 128 letters, digits, '_', '.' or '-' starting with a letter or digit, such as a container id "3f1c2a9b7d10"`,
    );
  }
  return identity;
}

export function hostIfbName(identity: string, containerIf: string): string {
  return `${HOST_IFB_PREFIX}${fnv1a64(`${identity}\0${containerIf}`).toString(16).padStart(16, '0').slice(4)}`;
}

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const U64 = (1n << 64n) - 1n;

/** 64-bit FNV-1a over the UTF-8 bytes of text */
export function fnv1a64(text: string): bigint {
  let h = FNV_OFFSET;
  for (const byte of Buffer.from(text, 'utf8')) h = ((h ^ BigInt(byte)) * FNV_PRIME) & U64;
  return h;
}

export interface HostAlias {
  identity: string;
  containerIf: string;
  peerIndex: number;
  peerName: string;
}

const ALIAS_TAG = 'netqos:h1';

export const formatHostAlias = (a: HostAlias): string => [ALIAS_TAG, a.identity, a.containerIf, String(a.peerIndex), a.peerName].join(':');

/** The owner an alias names, or undefined when it is not one of ours. */
export function parseHostAlias(alias: string | undefined): HostAlias | undefined {
  if (alias === undefined || !alias.startsWith(`${ALIAS_TAG}:`)) return undefined;
  const parts = alias.slice(ALIAS_TAG.length + 1).split(':');
  if (parts.length !== 4) return undefined;
  const [identity, containerIf, index, peerName] = parts as [string, string, string, string];
  if (!IDENTITY.test(identity) || containerIf === '' || peerName === '' || !/^[1-9][0-9]*$/.test(index)) return undefined;
  return { identity, containerIf, peerIndex: Number(index), peerName };
}
