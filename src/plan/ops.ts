/**
 * A plan is data: the ordered ip and tc operations for one network namespace. It is rendered to
 * `ip -batch` / `tc -batch` text (render.ts) and applied by one process per tool.
 */
/** add: fails when the object exists (the ingress hook: never replace a clsact or ingress qdisc someone else put there) */
export type TcVerb = 'add' | 'replace' | 'delete';

export interface QdiscOp {
  object: 'qdisc';
  verb: TcVerb;
  dev: string;
  /** 'root', 'ingress' (the ingress hook: ingress qdisc), or a class id such as '4e51:1' */
  parent: string;
  handle?: string;
  kind?: string;
  options?: string[];
}

export interface ClassOp {
  object: 'class';
  verb: 'replace' | 'delete';
  dev: string;
  parent: string;
  classid: string;
  kind?: 'htb';
  options?: string[];
}

export interface FilterOp {
  object: 'filter';
  verb: 'add' | 'delete';
  dev: string;
  /** 'ffff:' on an ingress qdisc, 'ffff:fff2' on clsact, '4e51:' on our HTB root */
  parent: string;
  /** 'all' when absent */
  protocol?: 'ip' | 'ipv6' | 'all';
  prio: number;
  kind?: 'u32';
  options?: string[];
}

export type TcOp = QdiscOp | ClassOp | FilterOp;

export type IpOp =
  /** created up (render.ts) */
  | { object: 'link'; verb: 'add'; name: string; kind: 'ifb'; mtu: number }
  | { object: 'link'; verb: 'up'; name: string }
  | { object: 'link'; verb: 'gso'; name: string; gsoMaxSize: number }
  | { object: 'link'; verb: 'alias'; name: string; alias: string }
  | { object: 'link'; verb: 'delete'; name: string };

/** What a plan does, per interface and direction, for logs and for the CLI. */
export interface Shaped {
  dev: string;
  direction: 'ingress' | 'egress';
  /** where the HTB tree lives: the device itself (egress) or its ifb (ingress) */
  shapedOn: string;
  /** true when shapedOn is in the node's namespace (vethShaping "host"): the veth's peer or an nqh ifb */
  onNode?: boolean;
  rateBps: number;
  burstBytes: number;
  quantum: number;
  leaf: string;
  /** the child classes, when the direction has netqos.io/<dir>-classes (the default one last) */
  classes?: ShapedClass[];
  /** prefixes that go around the limit */
  unshaped?: string[];
}

export interface ShapedClass {
  name: string;
  classid: string;
  rateBps: number;
  ceilBps: number;
  prio: number;
  quantum: number;
  leaf: string;
}

export interface Plan {
  /** ip operations that run before tc (create and raise ifbs) */
  ip: IpOp[];
  tc: TcOp[];
  /** ip operations that run after tc (delete ifbs once nothing redirects to them) */
  ipAfter: IpOp[];
  shaped: Shaped[];
}

export const emptyPlan = (): Plan => ({ ip: [], tc: [], ipAfter: [], shaped: [] });

/**
 * How many of the plan's first tc operations name no device its ip part creates: those can run
 * while ip creates the ifbs (a container's egress tree, planned before its ingress).
 */
export function tcBeforeCreated(plan: Plan): number {
  const created = new Set(plan.ip.flatMap((op) => (op.verb === 'add' ? [op.name] : [])));
  const names = (op: TcOp): boolean => created.has(op.dev) || ('options' in op && (op.options ?? []).some((w) => created.has(w)));
  const i = plan.tc.findIndex(names);
  return i === -1 ? plan.tc.length : i;
}
