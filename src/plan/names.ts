/**
 * Names and handles netqos owns. Everything is derived from identity (the device's ifindex in
 * its namespace), so teardown needs no state: it recognises our objects by these names.
 */

/** our HTB root: major 0x4e51 ("NQ"), unlikely to collide with anyone's 1: */
export const ROOT_HANDLE = '4e51:';
export const CLASS_ID = '4e51:1';
/**
 * The leaf qdisc under CLASS_ID, one handle per kind: the kernel refuses `qdisc replace` that
 * keeps a handle but changes the kind, while a new handle grafts the new leaf in place.
 */
export const LEAF_HANDLE = '4e52:';
export const FQ_CODEL_LEAF_HANDLE = '4e53:';
export const leafHandle = (kind: string): string => (kind === 'fq_codel' ? FQ_CODEL_LEAF_HANDLE : LEAF_HANDLE);
/** the u32 redirect filter is ours by its priority (see ingress-hook.ts for why not a handle) */
export const FILTER_PRIO = 49;
export const INGRESS_PARENT = 'ffff:';
export const CLSACT_INGRESS_PARENT = 'ffff:fff2';

/** ifb names: `nqi` + the shaped device's ifindex, created inside the container's namespace */
export const IFB_PREFIX = 'nqi';
export const ifbName = (ifindex: number): string => `${IFB_PREFIX}${ifindex}`;
export const isOurIfb = (name: string): boolean => /^nqi\d+$/.test(name);
