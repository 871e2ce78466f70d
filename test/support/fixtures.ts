/**
 * Real-kernel fixtures for integration tests that run as root: network namespaces, veth and
 * macvlan pairs between them, kernel-state snapshots, and a registry that removes exactly what
 * this process created (afterAll(cleanupAll), and again on exit / SIGINT / SIGTERM).
 *
 * Safety (ENVIRONMENT.md): every namespace is `nqt-<tag>-<4 hex>`; links are created directly
 * inside our own namespaces (`ip -n`), so nothing is ever created in the root namespace; the
 * only root-namespace links cleanupAll deletes are ones registered with registerRootLink, which
 * must start with `nqt`. Addresses come from 198.18.0.0/15 (benchmarking) and fd00:6e71::/48
 * (ULA, "nq").
 *
 * When env NQT_LEDGER names a file (test/all.sh sets it), every namespace, root link and process
 * registered here is appended to it, so test/leftovers.sh can tell what this run created.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, appendFileSync, constants, readFileSync, rmSync } from 'node:fs';
import { inNetns, type NetnsRef } from '../../src/kernel/netns.js';
import { run, type RunOptions, type RunResult } from '../../src/kernel/runner.js';
import { hasTool, toolPath, type Tool } from '../../src/kernel/tools.js';

/**
 * vitest only when running under it (it sets VITEST in its workers): importing vitest anywhere
 * else throws, and bench scripts use these fixtures from plain Node.
 */
const vitest: typeof import('vitest') | undefined = process.env.VITEST ? await import('vitest') : undefined;
type Describe = typeof import('vitest').describe;
type It = typeof import('vitest').it;

// ---------------------------------------------------------------------------------------------
// registry

interface Registry {
  netns: Set<string>;
  rootLinks: Set<string>;
  /** pid -> expected /proc/<pid>/comm, checked before any kill so a reused pid is never hit */
  pids: Map<number, string>;
  files: Set<string>;
}

const registry: Registry = { netns: new Set(), rootLinks: new Set(), pids: new Map(), files: new Set() };
let handlersInstalled = false;

function ledger(line: string): void {
  const file = process.env.NQT_LEDGER;
  if (!file) return;
  try {
    appendFileSync(file, `${line}\n`);
  } catch {
    // the ledger is a diagnostic aid for leftovers.sh; a test never fails because of it
  }
}

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.once('exit', cleanupAllSync);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      cleanupAllSync();
      process.kill(process.pid, sig); // our handler is gone (once): default action now
    });
  }
}

export function registerNetns(name: string): void {
  assertOurs(name);
  registry.netns.add(name);
  ledger(`netns ${name}`);
  installExitHandlers();
}

/** A link in the root namespace that the caller created (its name must start with nqt). */
export function registerRootLink(name: string): void {
  assertOurs(name);
  registry.rootLinks.add(name);
  ledger(`link ${name}`);
  installExitHandlers();
}

/** A process cleanupAll kills (SIGKILL) if it is still running and its comm is still `comm`. */
export function registerPid(pid: number, comm: string): void {
  registry.pids.set(pid, comm);
  ledger(`pid ${pid} ${comm}`);
  installExitHandlers();
}

export function unregisterPid(pid: number): void {
  registry.pids.delete(pid);
}

/** A temporary file (pid files, logs) removed by cleanupAll. */
export function registerFile(path: string): void {
  registry.files.add(path);
  installExitHandlers();
}

/** What this process has registered and not yet cleaned up. */
export function registered(): { netns: string[]; rootLinks: string[]; pids: number[] } {
  return { netns: [...registry.netns], rootLinks: [...registry.rootLinks], pids: [...registry.pids.keys()] };
}

function assertOurs(name: string): void {
  if (!name.startsWith('nqt')) throw new Error(`refusing to manage ${name}: test objects are named nqt…`);
}

/** Is pid alive (not a zombie) and still running the program we started? */
export function pidAlive(pid: number, comm?: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S ..." — comm may contain spaces and parentheses: take the last ')'
    const close = stat.lastIndexOf(')');
    const name = stat.slice(stat.indexOf('(') + 1, close);
    const state = stat.slice(close + 2, close + 3);
    if (state === 'Z' || state === 'X') return false;
    return comm === undefined || name === comm;
  } catch {
    return false;
  }
}

async function waitGone(pids: readonly number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let alive = pids.filter((p) => pidAlive(p));
  while (alive.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    alive = alive.filter((p) => pidAlive(p));
  }
  return alive;
}

export interface CleanupReport {
  killed: number[];
  netns: string[];
  rootLinks: string[];
  errors: string[];
}

/**
 * Kills registered processes, then deletes registered root links and namespaces (deleting a
 * namespace frees every device in it). Only what this process registered. Throws, after trying
 * everything, when something could not be removed.
 */
export async function cleanupAll(): Promise<CleanupReport> {
  const report: CleanupReport = { killed: [], netns: [], rootLinks: [], errors: [] };
  for (const [pid, comm] of registry.pids) {
    if (pidAlive(pid, comm)) {
      try {
        process.kill(pid, 'SIGKILL');
        report.killed.push(pid);
      } catch (e) {
        report.errors.push(`kill ${pid}: ${String(e)}`);
      }
    }
  }
  const stuck = await waitGone(report.killed, 3000);
  for (const pid of stuck) report.errors.push(`pid ${pid} still running after SIGKILL`);
  registry.pids.clear();

  const ip = toolPath('ip');
  for (const link of registry.rootLinks) {
    const r = await run(ip, ['link', 'del', 'dev', link], { allowFail: true });
    if (r.code === 0) report.rootLinks.push(link);
    else if (linkExists(link)) report.errors.push(`ip link del ${link}: ${r.stderr.trim()}`);
  }
  registry.rootLinks.clear();
  for (const ns of registry.netns) {
    const r = await run(ip, ['netns', 'del', ns], { allowFail: true });
    if (r.code === 0) report.netns.push(ns);
    else if (netnsListed(ns)) report.errors.push(`ip netns del ${ns}: ${r.stderr.trim()}`);
  }
  registry.netns.clear();
  for (const f of registry.files) rmSync(f, { force: true });
  registry.files.clear();
  if (report.errors.length > 0) throw new Error(`cleanupAll: ${report.errors.join('; ')}`);
  return report;
}

/**
 * Synchronous last resort for process exit and signals, where no promise can run. It uses
 * spawnSync directly: runner.run is asynchronous by design.
 */
function cleanupAllSync(): void {
  for (const [pid, comm] of registry.pids) {
    if (pidAlive(pid, comm)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }
  registry.pids.clear();
  let ip: string;
  try {
    ip = toolPath('ip');
  } catch {
    return;
  }
  for (const link of registry.rootLinks) spawnSync(ip, ['link', 'del', 'dev', link], { stdio: 'ignore', timeout: 5000 });
  registry.rootLinks.clear();
  for (const ns of registry.netns) spawnSync(ip, ['netns', 'del', ns], { stdio: 'ignore', timeout: 5000 });
  registry.netns.clear();
  for (const f of registry.files) rmSync(f, { force: true });
  registry.files.clear();
}

function netnsListed(ns: string): boolean {
  try {
    accessSync(`/run/netns/${ns}`, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

function linkExists(name: string): boolean {
  try {
    accessSync(`/sys/class/net/${name}`, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// running things inside our namespaces

export const nsPath = (ns: string): string => `/run/netns/${ns}`;
export const nsRef = (ns: string): NetnsRef => ({ path: nsPath(ns) });

/** `ip -n <ns> ...` */
export function ipIn(ns: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
  return run(toolPath('ip'), ['-n', ns, ...args], opts);
}

/** A device's ifindex in a namespace (our ifb for it is nqi<ifindex>). */
export async function ifindexIn(ns: string, dev: string): Promise<number> {
  return (JSON.parse((await ipIn(ns, ['-json', 'link', 'show', 'dev', dev])).stdout) as { ifindex: number }[])[0]!.ifindex;
}

/** `ip -n <ns> -batch -` with one command per line (one process for the lot). */
export function ipBatch(ns: string, lines: readonly string[], opts?: RunOptions): Promise<RunResult> {
  return run(toolPath('ip'), ['-n', ns, '-batch', '-'], { ...opts, input: `${lines.join('\n')}\n` });
}

/** `tc ...` inside the namespace (through nsenter, as the product does). */
export function tcIn(ns: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
  return inNetns(nsRef(ns), 'tc', args, opts);
}

// ---------------------------------------------------------------------------------------------
// namespaces and links

const TAG = /^[a-z0-9][a-z0-9-]{0,23}$/;

/** `nqt-<tag>-<4 hex>`, created with lo up, registered for cleanup. */
export async function makeNetns(tag: string): Promise<string> {
  if (!TAG.test(tag)) throw new Error(`makeNetns: tag ${JSON.stringify(tag)} must match ${TAG}`);
  const ip = toolPath('ip');
  for (let attempt = 0; attempt < 8; attempt++) {
    const name = `nqt-${tag}-${randomBytes(2).toString('hex')}`;
    if (netnsListed(name)) continue;
    const r = await run(ip, ['netns', 'add', name], { allowFail: true });
    if (r.code !== 0) {
      if (/exists/i.test(r.stderr)) continue; // another run picked the same name just now
      throw new Error(`ip netns add ${name} failed: ${r.stderr.trim()}`);
    }
    registerNetns(name);
    await ipIn(name, ['link', 'set', 'lo', 'up']);
    return name;
  }
  throw new Error(`makeNetns(${tag}): no free name after 8 attempts`);
}

export interface Endpoint {
  ns: string;
  dev: string;
  /** address without prefix, e.g. 198.18.7.1 */
  ipv4: string;
  /** e.g. fd00:6e71:0:7::1 */
  ipv6: string;
  /** with prefix, e.g. 198.18.7.1/24 */
  cidr4: string;
  cidr6: string;
}

export interface LinkPair {
  kind: 'veth' | 'macvlan';
  a: Endpoint;
  b: Endpoint;
  /** macvlan only: the namespace holding the parent veth ("the host") */
  switchNs?: string;
  /** macvlan only: the parent device's name inside switchNs */
  parentDev?: string;
}

export interface PairOptions {
  /** IPv4 in 198.18.0.0/15, with or without /24 (always /24); default: a fresh subnet */
  addrA?: string;
  addrB?: string;
  mtu?: number;
  /** device names inside the namespaces; default eth0 */
  devA?: string;
  devB?: string;
}

let subnetCounter = 0;

/** The next /24 of 198.18.0.0/15 for this process (namespaces are private, so reuse across processes is harmless). */
function nextSubnet(): number {
  const n = subnetCounter % 512;
  subnetCounter++;
  return n;
}

/**
 * Parses an IPv4 address in 198.18.0.0/15 and derives its ULA twin: 198.(18+h).s.x ->
 * fd00:6e71:0:<h*256+s hex>::<x hex>, both /24 resp. /64.
 */
export function addressPlan(addr: string): Omit<Endpoint, 'ns' | 'dev'> {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)(?:\/(\d+))?$/.exec(addr);
  const [o1, o2, o3, o4] = m ? [m[1], m[2], m[3], m[4]].map(Number) : [];
  if (!m || o1 !== 198 || (o2 !== 18 && o2 !== 19) || o3! > 255 || o4! > 254 || o4! < 1 || (m[5] && m[5] !== '24')) {
    throw new Error(`address ${addr}: tests use host addresses in 198.18.0.0/15 with a /24 prefix`);
  }
  const subnet = (o2! - 18) * 256 + o3!;
  const ipv4 = `${o1}.${o2}.${o3}.${o4}`;
  const ipv6 = `fd00:6e71:0:${subnet.toString(16)}::${o4!.toString(16)}`;
  return { ipv4, ipv6, cidr4: `${ipv4}/24`, cidr6: `${ipv6}/64` };
}

function defaultAddrs(opts: PairOptions): [string, string] {
  if (opts.addrA && opts.addrB) return [opts.addrA, opts.addrB];
  if (opts.addrA || opts.addrB) throw new Error('give both addrA and addrB, or neither');
  const n = nextSubnet();
  const base = `198.${18 + (n >> 8)}.${n & 255}`;
  return [`${base}.1`, `${base}.2`];
}

let indexCounter = 0;

/**
 * Explicit, distinct ifindexes for the two ends of a veth. Fresh namespaces number their first
 * device 2, so a veth between two fresh namespaces would get ifindex == iflink (its peer's index)
 * on both ends; the kernel then treats its carrier change as a non-urgent linkwatch event,
 * delayed up to 1 s, and IPv6 (link-local, the ff00::/8 multicast route, hence neighbour
 * discovery) only starts then: the first IPv6 packets after setup are lost. A container's veth
 * never looks like that (its host end has another index), so neither do ours.
 */
function nextIndexes(): [string, string] {
  const base = 1000 + 2 * (indexCounter++ % 100_000);
  return [String(base), String(base + 1)];
}

function addressLines(dev: string, e: Omit<Endpoint, 'ns' | 'dev'>): string[] {
  return [`addr add ${e.cidr4} dev ${dev}`, `addr add ${e.cidr6} dev ${dev} nodad`, `link set ${dev} up`];
}

function checkDev(name: string): void {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) throw new Error(`device name ${JSON.stringify(name)} is not a valid interface name`);
}

/** The checked names and address plans of a pair's two ends. */
function pairEnds(what: string, nsA: string, nsB: string, opts: PairOptions) {
  if (nsA === nsB) throw new Error(`${what}: the two ends need two namespaces`);
  for (const ns of [nsA, nsB]) assertRegistered(ns);
  const devA = opts.devA ?? 'eth0';
  const devB = opts.devB ?? 'eth0';
  checkDev(devA);
  checkDev(devB);
  const [addrA, addrB] = defaultAddrs(opts);
  return { devA, devB, pa: addressPlan(addrA), pb: addressPlan(addrB) };
}

/**
 * A veth between two of our namespaces, created directly inside them (no root-namespace name
 * exists even for a moment), addressed (IPv4 /24 + IPv6 /64 nodad) and up.
 */
export async function vethPair(nsA: string, nsB: string, opts: PairOptions = {}): Promise<LinkPair> {
  const { devA, devB, pa, pb } = pairEnds('vethPair', nsA, nsB, opts);
  const mtu = opts.mtu ? ['mtu', String(opts.mtu)] : [];
  const [ia, ib] = nextIndexes();
  await ipIn(nsA, ['link', 'add', devA, ...mtu, 'index', ia, 'type', 'veth', 'peer', 'name', devB, 'netns', nsB, ...mtu, 'index', ib]);
  await ipBatch(nsA, addressLines(devA, pa));
  await ipBatch(nsB, addressLines(devB, pb));
  return { kind: 'veth', a: { ns: nsA, dev: devA, ...pa }, b: { ns: nsB, dev: devB, ...pb } };
}

export interface MacvlanOptions extends PairOptions {
  /**
   * 'macvlan' (default): both namespaces get a macvlan (mode bridge) child of one parent veth in
   * a switch namespace: two containers on one macvlan network.
   * 'parent': nsA gets the macvlan child, nsB holds the far end of the parent veth: a container
   * on a podman macvlan network talking to a peer outside the host.
   */
  peer?: 'macvlan' | 'parent';
}

/**
 * A macvlan pair. Creates (and registers) a "switch" namespace `nqt-sw-xxxx` holding the parent
 * veth `parent` (its far end `uplink` stays in the switch namespace in 'macvlan' mode, so the
 * parent has carrier). Children are created in the switch namespace and moved, renamed, into
 * nsA / nsB.
 */
export async function macvlanPair(nsA: string, nsB: string, opts: MacvlanOptions = {}): Promise<LinkPair> {
  const { devA, devB, pa, pb } = pairEnds('macvlanPair', nsA, nsB, opts);
  const mtu = opts.mtu ? ` mtu ${opts.mtu}` : '';
  const sw = await makeNetns('sw');
  const [ia, ib] = nextIndexes();
  const lines =
    (opts.peer ?? 'macvlan') === 'macvlan'
      ? [
          `link add parent${mtu} index ${ia} type veth peer name uplink${mtu} index ${ib}`,
          `link add link parent name mva${mtu} type macvlan mode bridge`,
          `link add link parent name mvb${mtu} type macvlan mode bridge`,
          `link set mva netns ${nsA} name ${devA}`,
          `link set mvb netns ${nsB} name ${devB}`,
          'link set uplink up',
          'link set parent up',
        ]
      : [
          `link add parent${mtu} index ${ia} type veth peer name ${devB} netns ${nsB}${mtu} index ${ib}`,
          `link add link parent name mva${mtu} type macvlan mode bridge`,
          `link set mva netns ${nsA} name ${devA}`,
          'link set parent up',
        ];
  await ipBatch(sw, lines);
  await ipBatch(nsA, addressLines(devA, pa));
  await ipBatch(nsB, addressLines(devB, pb));
  return {
    kind: 'macvlan',
    a: { ns: nsA, dev: devA, ...pa },
    b: { ns: nsB, dev: devB, ...pb },
    switchNs: sw,
    parentDev: 'parent',
  };
}

function assertRegistered(ns: string): void {
  if (!registry.netns.has(ns)) throw new Error(`${ns} was not made by makeNetns in this process: fixtures only wire their own namespaces`);
}

// ---------------------------------------------------------------------------------------------
// snapshots

/** counters and timestamps: everything that changes by itself while nothing is configured */
const VOLATILE = new Set([
  'bytes', 'packets', 'drops', 'overlimits', 'requeues', 'backlog', 'qlen', 'stats', 'stats64',
  'installed', 'last_used', 'first_used', 'expires', 'lastuse', 'ref', 'bind', 'refcnt',
  'direct_packets_stat', 'not_in_hw', 'in_hw', 'in_hw_count',
]);

function stable(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stable);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      if (!VOLATILE.has(k)) out[k] = stable((v as Record<string, unknown>)[k]);
    }
    return out;
  }
  return v;
}

interface IpLink {
  ifname: string;
  flags?: string[];
  mtu?: number;
  qdisc?: string;
  master?: string;
  link?: string | null;
  txqlen?: number;
  gso_max_size?: number;
  gso_max_segs?: number;
  gro_max_size?: number;
  linkinfo?: { info_kind?: string; info_slave_kind?: string };
}

interface TcQdisc {
  kind: string;
  handle: string;
  parent?: string;
  root?: boolean;
}

type Exec = (tool: 'ip' | 'tc', args: string[]) => Promise<RunResult>;

async function snapshotWith(exec: Exec, include: (ifname: string) => boolean): Promise<string> {
  const links = (JSON.parse((await exec('ip', ['-j', '-d', 'link', 'show'])).stdout || '[]') as IpLink[])
    .filter((l) => include(l.ifname))
    .sort((x, y) => x.ifname.localeCompare(y.ifname));
  const out: string[] = [];
  for (const l of links) {
    out.push(
      [
        `link ${l.ifname}`,
        `kind=${l.linkinfo?.info_kind ?? '-'}`,
        `flags=${(l.flags ?? []).join(',')}`,
        `mtu=${l.mtu ?? '-'}`,
        `qdisc=${l.qdisc ?? '-'}`,
        `master=${l.master ?? '-'}`,
        `txqlen=${l.txqlen ?? '-'}`,
        `gso=${l.gso_max_size ?? '-'}/${l.gso_max_segs ?? '-'}`,
        `gro=${l.gro_max_size ?? '-'}`,
      ].join(' '),
    );
  }
  for (const l of links) {
    const dev = l.ifname;
    const qdiscs = JSON.parse((await exec('tc', ['-j', 'qdisc', 'show', 'dev', dev])).stdout || '[]') as TcQdisc[];
    for (const q of qdiscs) out.push(`qdisc ${dev} ${JSON.stringify(stable(q))}`);
    // tc -j class show prints plain text on iproute2 6.1 (no JSON for classes): use the text,
    // which has no statistics without -s
    const classes = (await exec('tc', ['class', 'show', 'dev', dev])).stdout.trim();
    if (classes) for (const line of classes.split('\n')) out.push(`class ${dev} ${line.trim()}`);
    // filters hang off a qdisc (or class): dump each qdisc's, plus clsact's two hooks
    const parents = new Set<string>();
    for (const q of qdiscs) {
      if (q.kind === 'clsact') {
        parents.add('ingress');
        parents.add('egress');
      } else if (q.handle && q.handle !== '0:') {
        parents.add(q.handle);
      }
    }
    for (const p of [...parents].sort()) {
      const args = p === 'ingress' || p === 'egress' ? [p] : ['parent', p];
      const r = await exec('tc', ['-j', 'filter', 'show', 'dev', dev, ...args]);
      const filters = JSON.parse(r.stdout.trim() || '[]') as unknown[];
      for (const f of filters) out.push(`filter ${dev} ${p} ${JSON.stringify(stable(f))}`);
    }
  }
  return `${out.join('\n')}\n`;
}

/**
 * Links (name, kind, flags, mtu, qdisc, master, txqlen, gso/gro limits) and qdiscs, classes and
 * filters without statistics, as sorted text: compare before == after.
 */
export function snapshotNs(ns: string): Promise<string> {
  return snapshotWith((tool, args) => (tool === 'ip' ? ipIn(ns, args) : tcIn(ns, args)), () => true);
}

/**
 * The same for the root namespace (read only). Links named nqt… that this process did not
 * register are left out: other engineers' runs create and delete theirs at any moment.
 */
export function snapshotRootNs(): Promise<string> {
  return snapshotWith(
    (tool, args) => run(toolPath(tool), args),
    (name) => !name.startsWith('nqt') || registry.rootLinks.has(name),
  );
}

// ---------------------------------------------------------------------------------------------
// environment checks

export type Program = Tool | 'busybox';

const BIN_DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin', '/usr/local/sbin', '/usr/local/bin'];

/** Absolute path of a program; the kernel/tools Tool set, plus busybox (ping). */
export function programPath(name: Program): string {
  if (name !== 'busybox') return toolPath(name);
  for (const dir of BIN_DIRS) {
    try {
      accessSync(`${dir}/${name}`, constants.X_OK);
      return `${dir}/${name}`;
    } catch {
      // next directory
    }
  }
  throw new Error(`${name} not found in ${BIN_DIRS.join(':')}; install the Debian package busybox-static`);
}

function hasProgram(name: Program): boolean {
  if (name !== 'busybox') return hasTool(name);
  try {
    programPath(name);
    return true;
  } catch {
    return false;
  }
}

export const inCI = (): boolean => process.env.CI === 'true' || process.env.CI === '1';

export interface RootCheck {
  ok: boolean;
  /** why not, when !ok */
  reason?: string;
  /** vitest's describe, or describe.skip with the reason appended to the suite's name */
  describe: Describe;
  /** vitest's it, or it.skip with the reason appended to the test's name */
  it: It;
}

/**
 * Call at module scope of a root-only test file:
 *
 *   const root = requireRoot(['ip', 'tc', 'iperf3']);
 *   root.describe('shaping on a veth', () => { ... });
 *
 * Not root or a program missing: the suites and tests are skipped, with the reason in their
 * names and on stderr. With CI=true it throws instead, so the file fails: nothing skips in CI.
 */
export function requireRoot(programs: readonly Program[] = ['ip', 'tc', 'nsenter']): RootCheck {
  if (!vitest) throw new Error('requireRoot is for vitest test files (VITEST is not set)');
  const { describe: vitestDescribe, it: vitestIt } = vitest;
  const problems: string[] = [];
  if (typeof process.getuid === 'function' && process.getuid() !== 0) problems.push(`not root (uid ${process.getuid()})`);
  const missing = programs.filter((p) => !hasProgram(p));
  if (missing.length > 0) problems.push(`missing ${missing.join(', ')} (run test/prepare.sh)`);
  if (problems.length === 0) return { ok: true, describe: vitestDescribe, it: vitestIt };
  const reason = problems.join('; ');
  if (inCI()) throw new Error(`CI=true and this test cannot run: ${reason}. Nothing may skip in CI.`);
  process.stderr.write(`[skip] ${reason}\n`);
  const suffix = ` [skipped: ${reason}]`;
  const describe = ((name: string, fn?: () => void) => vitestDescribe.skip(`${name}${suffix}`, fn)) as unknown as Describe;
  const it = ((name: string, fn?: () => void) => vitestIt.skip(`${name}${suffix}`, fn)) as unknown as It;
  return { ok: false, reason, describe, it };
}
