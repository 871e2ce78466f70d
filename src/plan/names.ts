/**
 * Names and handles netqos owns. Everything is derived from identity (the device's ifindex in
 * its namespace), so teardown needs no state: it recognises our objects by these names.
 */

/** our HTB root: major 0x4e51 ("NQ"), unlikely to collide with anyone's 1: */
export const ROOT_HANDLE = '4e51:';
export const CLASS_ID = '4e51:1';
/** the u32 redirect filter is ours by its priority (see ingress-hook.ts for why not a handle) */
export const FILTER_PRIO = 49;
export const INGRESS_PARENT = 'ffff:';
export const CLSACT_INGRESS_PARENT = 'ffff:fff2';

/** ifb names: `nqi` + the shaped device's ifindex, created inside the container's namespace */
export const IFB_PREFIX = 'nqi';
export const ifbName = (ifindex: number): string => `${IFB_PREFIX}${ifindex}`;
export const isOurIfb = (name: string): boolean => /^nqi\d+$/.test(name);

/*
 * Classes (netqos.io/<dir>-classes) and unshaped subnets. With classes, 4e51:1 is the parent
 * (rate = ceil = the total) and the root's default is the default child 4e51:10; the named
 * classes are 4e51:11, 4e51:12, ... in the order of the annotation. Each child's leaf has its
 * own handle, one per kind (the kernel refuses a `qdisc replace` that keeps a handle but changes
 * the kind, while a new handle grafts the new leaf in place): 5011: bfifo / 6011: fq_codel /
 * 7011: tbf (a leaf that segments, params.ts).
 * Unshaped subnets on egress go to 4e51:2, a class beside 4e51:1 under the root, not under
 * the limit. Every filter on our HTB root is ours (the qdisc is), found by its priority.
 */
export const DEFAULT_CHILD_MINOR = 0x10;
export const DEFAULT_CHILD_ID = `4e51:${DEFAULT_CHILD_MINOR.toString(16)}`;
export const childClassId = (i: number): string => `4e51:${(DEFAULT_CHILD_MINOR + 1 + i).toString(16)}`;
export const BYPASS_CLASS_ID = '4e51:2';
/**
 * The HTB root's `default` (hex, as tc reads and prints it): always the default child. Without
 * classes the tree still has children (see SMALL_CLASS_ID): 4e51:10 is then the bulk class.
 * HTB sends a packet whose default class is not a leaf around every limit (HTB_DIRECT), so the
 * default must name a leaf.
 */
export const ROOT_DEFAULT = DEFAULT_CHILD_MINOR;
/**
 * Without classes, small packets (pings, TCP ACKs, DNS, keystrokes: IP packets under
 * SMALL_PACKET_BYTES) go to 4e51:3, a child of 4e51:1 beside the bulk class 4e51:10, served
 * first (see params.ts smallShare). Its u32 filters on the root come after the unshaped ones.
 */
export const SMALL_CLASS_ID = '4e51:3';
export const BULK_CLASS_ID = DEFAULT_CHILD_ID;
export const SMALL_FILTER_PRIO = { 4: 3, 6: 4 } as const;
/** a class a user's classes annotation made (4e51:11 ...), or the unshaped-subnet class */
export const isUserClass = (classid: string): boolean =>
  classid === BYPASS_CLASS_ID || (classid.startsWith('4e51:') && minorOf(classid) > DEFAULT_CHILD_MINOR);
const minorOf = (classid: string): number => parseInt(classid.split(':')[1] ?? '0', 16);
const LEAF_MAJOR: Record<string, number> = { bfifo: 0x5000, fq_codel: 0x6000, tbf: 0x7000 };
export const childLeafHandle = (classid: string, kind: string): string => `${((LEAF_MAJOR[kind] ?? 0x5000) + minorOf(classid)).toString(16)}:`;
/** filter priorities on our HTB root: unshaped subnets first, then class i (IPv4, IPv6) */
export const ROOT_BYPASS_PRIO = { 4: 1, 6: 2 } as const;
export const classFilterPrio = (i: number, family: 4 | 6): number => 10 + 2 * i + (family === 6 ? 1 : 0);
/**
 * Unshaped subnets on ingress: u32 filters on the device's ingress hook before our redirect
 * (prio 49), without an action, so a match ends classification and the packet is delivered
 * without reaching the ifb. The flowid marks them as ours (it means nothing on a hook).
 */
export const HOOK_BYPASS_PRIO = { 4: 47, 6: 48 } as const;
export const HOOK_BYPASS_FLOWID = 'ffff:4e51';
