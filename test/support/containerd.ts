/**
 * A real containerd (2.1 from Debian sid, or 1.7 from Debian trixie) for end-to-end tests of the
 * NRI plugin, isolated from the machine and from other people's runs:
 *
 * - everything lives in LAB.dir = /tmp/nqt-ctrd-<hex>: config, root, state, sockets (containerd's,
 *   the NRI socket), the plugin directory, CNI config and IPAM data, logs;
 * - containerd (hence the shims, runc, CNI and pre-installed NRI plugins) runs in the network
 *   namespace `nqt-ctrd-<hex>`, which holds the CNI bridge `nqtcbr0` and the pods' host-side
 *   veths: nothing is created in the root network namespace;
 * - containerd runs in a mount namespace of its own in which /var/lib is an overlay whose writes
 *   land in LAB.dir (libcni hard-codes its cache /var/lib/cni); LAB.dir itself is a shared bind
 *   mount, so what containerd mounts there (pod netns files, rootfs, shm) is visible from the
 *   host, where NRI plugins and tests open the pods' namespaces;
 * - pods get the cgroup parent `/nqt-ctrd-<hex>` (cgroupfs), so runc's cgroups carry our name;
 * - containerd 2.x and 1.7 hard-code the shim socket directory /run/containerd/s: the sockets of
 *   our shims are named sha256(<address>/k8s.io/<id>) there, which teardown recomputes from the
 *   ids this lab ran, so it removes exactly ours.
 *
 *   const lab = await startLab({ version: '2.1' });      // about 1 s
 *   const pod = await lab.runPod({ name: 'p1', annotations: { 'kubernetes.io/egress-bandwidth': '10M' } });
 *   await lab.stopPod(pod.id); await lab.removePod(pod.id);
 *   expect(await lab.leftovers()).toEqual([]);
 *   await lab.teardown();                                   // kills, unmounts, removes all of it
 *
 * Needs root and the cache test/prepare.sh fills (containerd-provision.ts); a crashed run's lab
 * is torn down by the next startLab (its owner process is gone).
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, rmdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { isDir, readText, safeReaddir } from './fs-quiet.js';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { run, type RunResult } from '../../src/kernel/runner.js';
import { containerdBinaries, provisionProblem, type ContainerdBinaries, type ContainerdVersion } from './containerd-provision.js';
import { buildImage, SLEEP_FOREVER } from './containerd-image.js';
import { CriClient, podConfig, type ContainerConfig, type PodSandboxConfig, type PodSandboxStatusResponse } from './cri.js';
import { pidAlive, registerFile, registerNetns, registerPid, unregisterPid } from './fixtures.js';

export type { ContainerdVersion } from './containerd-provision.js';

const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), '../fixtures/containerd');
const LAB_PREFIX = 'nqt-ctrd-';
const LAB_PARENT = '/tmp';
const CGROUP_ROOT = '/sys/fs/cgroup';
const SHIM_SOCKET_DIR = '/run/containerd/s';
const CNI_SYSTEM_BIN = '/usr/lib/cni';
const K8S_NS = 'k8s.io';
export const PAUSE_IMAGE = 'nqt.local/pause:1';
export const BUSYBOX_IMAGE = 'nqt.local/busybox:1';
export const BRIDGE = 'nqtcbr0';
const PATH_DIRS = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'];
/** a hard stop for the containerd process (runner's deadline), far beyond any test */
const DAEMON_DEADLINE_MS = 3 * 3600_000;

// ------------------------------------------------------------------------------------- helpers

export function bin(name: string): string {
  for (const d of PATH_DIRS) if (existsSync(`${d}/${name}`)) return `${d}/${name}`;
  throw new Error(`${name} not found in ${PATH_DIRS.join(':')}`);
}




async function must(file: string, args: readonly string[], timeoutMs = 20_000): Promise<string> {
  const r = await run(file, args, { timeoutMs, allowFail: true });
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** why a containerd lab cannot run here, or undefined */
export function labUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'the containerd lab needs root';
  const missing = ['ip', 'tc', 'nsenter', 'unshare', 'mount', 'umount', 'runc', 'iperf3', 'busybox'].filter((b) => {
    try {
      bin(b);
      return false;
    } catch {
      return true;
    }
  });
  if (!existsSync('/usr/lib/cni/bridge') || !existsSync('/usr/lib/cni/host-local')) missing.push('/usr/lib/cni/{bridge,host-local}');
  if (missing.length) return `missing ${missing.join(', ')} (test/prepare.sh installs them)`;
  return provisionProblem();
}

// ------------------------------------------------------------------------------------- /proc

interface Proc {
  pid: number;
  ppid: number;
  comm: string;
  cmdline: string;
  mnt: string;
  net: string;
}

function procs(): Proc[] {
  const out: Proc[] = [];
  for (const d of safeReaddir('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const stat = readText(`/proc/${d}/stat`);
    if (!stat) continue;
    const close = stat.lastIndexOf(')');
    const rest = stat.slice(close + 2).split(' ');
    if (rest[0] === 'Z' || rest[0] === 'X') continue;
    let mnt = '';
    let net = '';
    try {
      mnt = readlinkSync(`/proc/${d}/ns/mnt`);
      net = readlinkSync(`/proc/${d}/ns/net`);
    } catch {
      // gone, or a kernel thread
    }
    out.push({
      pid: Number(d),
      ppid: Number(rest[1]),
      comm: stat.slice(stat.indexOf('(') + 1, close),
      cmdline: (readText(`/proc/${d}/cmdline`) ?? '').replace(/\0/g, ' ').trim(),
      mnt,
      net,
    });
  }
  return out;
}

/** the processes matching `seed` and all their descendants */
function withDescendants(all: Proc[], seed: (p: Proc) => boolean): Proc[] {
  const picked = new Map<number, Proc>();
  for (const p of all) if (seed(p)) picked.set(p.pid, p);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of all) {
      if (!picked.has(p.pid) && picked.has(p.ppid)) {
        picked.set(p.pid, p);
        grew = true;
      }
    }
  }
  return [...picked.values()];
}

// ------------------------------------------------------------------------------------- mounts

function mountPointsUnder(dir: string): string[] {
  const text = readText('/proc/self/mountinfo') ?? '';
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => (l.split(' ')[4] ?? '').replace(/\\040/g, ' '))
    .filter((m) => m === dir || m.startsWith(`${dir}/`));
}

// ------------------------------------------------------------------------------------- the record a teardown needs

/** What a lab created, written to <dir>/owner.json, so a later run can clean a crashed one up. */
interface LabRecord {
  ownerPid: number;
  /** /proc/<ownerPid>/stat starttime: tells a reused pid apart */
  ownerStart: string;
  dir: string;
  netns: string;
  address: string;
  cgroupParent: string;
  /** mount namespaces containerd ran in (mnt:[inode]) */
  mntNamespaces: string[];
  /** sandbox and container ids this lab ran (shim sockets are derived from them) */
  ids: string[];
  /** /run/containerd and /run/containerd/s did not exist before this lab: remove them when empty */
  createdRunDirs: string[];
}

function startTime(pid: number): string | undefined {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

function saveRecord(r: LabRecord): void {
  writeFileSync(join(r.dir, 'owner.json'), `${JSON.stringify(r, null, 1)}\n`);
}

/** containerd's shim socket for one task id: /run/containerd/s/<sha256 of "<address>/<ns>/<id>"> */
export function shimSocketPath(address: string, id: string, debug = false): string {
  const p = `${address}/${K8S_NS}/${id}${debug ? '/debug' : ''}`;
  return `${SHIM_SOCKET_DIR}/${createHash('sha256').update(p).digest('hex')}`;
}

/** every id the lab's own files name (task bundles, CRI metadata dirs), plus the recorded ones */
function idsOf(r: LabRecord): Set<string> {
  const ids = new Set(r.ids);
  const dirs = [
    join(r.dir, `state/io.containerd.runtime.v2.task/${K8S_NS}`),
    join(r.dir, 'state/io.containerd.grpc.v1.cri/sandboxes'),
    join(r.dir, 'state/io.containerd.grpc.v1.cri/containers'),
    join(r.dir, 'root/io.containerd.grpc.v1.cri/sandboxes'),
    join(r.dir, 'root/io.containerd.grpc.v1.cri/containers'),
  ];
  for (const d of dirs) for (const id of safeReaddir(d)) if (/^[0-9a-f]{64}$/.test(id)) ids.add(id);
  return ids;
}

export interface TeardownReport {
  killed: string[];
  unmounted: string[];
  removedSockets: string[];
  removedCgroups: string[];
  removedNetns: string[];
  problems: string[];
}

/** processes of a lab: in its mount namespaces, naming its address, and all their descendants */
function labProcs(r: LabRecord, containerdPid?: number): Proc[] {
  const mnts = new Set(r.mntNamespaces);
  return withDescendants(
    procs(),
    // containerd's pid only while it still is containerd: once killed, its pid may be reused
    (p) => p.pid !== process.pid && (mnts.has(p.mnt) || p.cmdline.includes(r.address) || (p.pid === containerdPid && p.comm === 'containerd')),
  );
}

function cgroupDirs(cgroupParent: string): string[] {
  return safeReaddir(CGROUP_ROOT)
    .map((h) => join(CGROUP_ROOT, h, cgroupParent))
    .filter(isDir);
}

function removeCgroupTree(path: string, report: TeardownReport): void {
  for (const c of safeReaddir(path)) if (isDir(join(path, c))) removeCgroupTree(join(path, c), report);
  try {
    rmdirSync(path);
    report.removedCgroups.push(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') report.problems.push(`cgroup ${path} kept: ${code}`);
  }
}

/**
 * Removes everything a lab made, from its record alone (no containerd needed): processes, mounts
 * under its dir, its shim sockets, its cgroups, its netns and its dir.
 */
async function teardownRecord(r: LabRecord, containerdPid?: number): Promise<TeardownReport> {
  const report: TeardownReport = { killed: [], unmounted: [], removedSockets: [], removedCgroups: [], removedNetns: [], problems: [] };
  if (!r.dir.startsWith(`${LAB_PARENT}/${LAB_PREFIX}`) || !r.netns.startsWith(LAB_PREFIX) || !r.cgroupParent.startsWith(`/${LAB_PREFIX}`)) {
    throw new Error(`refusing to tear down a lab record that is not ours: ${JSON.stringify(r)}`);
  }
  // 1. processes (containerd, shims, pause and containers, launched plugins), a few rounds: a
  //    shim may be starting another while we kill
  for (let round = 0; round < 5; round++) {
    const victims = labProcs(r, containerdPid);
    if (victims.length === 0) break;
    for (const p of victims) {
      try {
        process.kill(p.pid, 'SIGKILL');
        report.killed.push(`${p.pid} ${p.comm}`);
      } catch {
        // gone meanwhile
      }
      unregisterPid(p.pid);
    }
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline && victims.some((p) => pidAlive(p.pid))) await sleep(20);
  }
  const still = labProcs(r, containerdPid);
  for (const p of still) report.problems.push(`process ${p.pid} ${p.comm} (ppid ${p.ppid}, ${p.mnt}, "${p.cmdline}") survived SIGKILL`);

  // 2. mounts under the dir, deepest first (the dir's own shared bind mount last)
  for (let round = 0; round < 5; round++) {
    const mounts = mountPointsUnder(r.dir).sort((a, b) => b.length - a.length);
    if (mounts.length === 0) break;
    for (const m of mounts) {
      const u = await run(bin('umount'), [m], { allowFail: true, timeoutMs: 10_000 });
      if (u.code === 0) report.unmounted.push(m);
      else {
        const l = await run(bin('umount'), ['-l', m], { allowFail: true, timeoutMs: 10_000 });
        if (l.code === 0) report.unmounted.push(`${m} (lazy)`);
      }
    }
  }
  for (const m of mountPointsUnder(r.dir)) report.problems.push(`mount ${m} kept`);

  // 3. our shim sockets in the hard-coded /run/containerd/s
  for (const id of idsOf(r)) {
    for (const sock of [shimSocketPath(r.address, id), shimSocketPath(r.address, id, true)]) {
      if (!existsSync(sock)) continue;
      try {
        rmSync(sock);
        report.removedSockets.push(sock);
      } catch (e) {
        report.problems.push(`socket ${sock} kept: ${String(e)}`);
      }
    }
  }
  for (const d of [...r.createdRunDirs].sort((a, b) => b.length - a.length)) {
    try {
      rmdirSync(d); // only when empty: someone else's containerd may use it by now
    } catch {
      // not empty or gone
    }
  }

  // 4. cgroups below our parent, in every hierarchy
  for (const c of cgroupDirs(r.cgroupParent)) removeCgroupTree(c, report);

  // 5. the network namespace (frees the bridge and the host-side veths)
  if (existsSync(`/run/netns/${r.netns}`)) {
    const d = await run(bin('ip'), ['netns', 'del', r.netns], { allowFail: true });
    if (d.code === 0) report.removedNetns.push(r.netns);
    else report.problems.push(`ip netns del ${r.netns}: ${d.stderr.trim()}`);
  }

  // 6. the directory, only with nothing mounted below it any more
  if (mountPointsUnder(r.dir).length === 0 && report.problems.length === 0) {
    rmSync(r.dir, { recursive: true, force: true });
  } else {
    report.problems.push(`${r.dir} kept`);
  }
  return report;
}

/** Tears down labs whose owner process is gone (a crashed or killed run). */
export async function sweepStaleLabs(): Promise<TeardownReport[]> {
  const reports: TeardownReport[] = [];
  for (const d of safeReaddir(LAB_PARENT)) {
    if (!d.startsWith(LAB_PREFIX)) continue;
    const text = readText(join(LAB_PARENT, d, 'owner.json'));
    if (!text) continue;
    let r: LabRecord;
    try {
      r = JSON.parse(text) as LabRecord;
    } catch {
      continue;
    }
    if (startTime(r.ownerPid) === r.ownerStart) continue; // its owner still runs
    reports.push(await teardownRecord(r));
  }
  return reports;
}

// ------------------------------------------------------------------------------------- config

function render(template: string, values: Record<string, string>): string {
  return fill(readFileSync(join(FIXTURES, template), 'utf8'), values, template);
}

/** @@KEY@@ -> values[KEY] */
function fill(text: string, values: Record<string, string>, what: string): string {
  return text.replace(/@@([A-Z_]+)@@/g, (_, k: string) => {
    const v = values[k];
    if (v === undefined) throw new Error(`${what}: no value for @@${k}@@`);
    return v;
  });
}

// ------------------------------------------------------------------------------------- the lab

export interface LabOptions {
  version: ContainerdVersion;
  /** the pods' /24, inside the lab netns only; default 198.19.21.0/24 (2.1) or 198.19.17.0/24 (1.7) */
  subnet?: string;
  /** files to put into the NRI plugin directory before containerd starts: name -> script text */
  preinstalled?: Record<string, string>;
  /** drop-in configs for plugin_config_path: file name -> text */
  pluginConfigs?: Record<string, string>;
  /** executables for the lab's CNI bin dir (beside links to /usr/lib/cni's plugins): name -> text */
  cniPlugins?: Record<string, string>;
  /** plugin configs appended to the lab's conflist chain, after the bridge; strings may hold @@DIR@@ and the like */
  cniChain?: Record<string, unknown>[];
}

export interface RunPodOptions {
  name: string;
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  hostNetwork?: boolean;
  /** CRI call deadline, ms */
  timeoutMs?: number;
}

export interface Pod {
  id: string;
  name: string;
  config: PodSandboxConfig;
  hostNetwork: boolean;
  /** the pod's IPv4 address (empty for host-network pods) */
  ip: string;
  /** the pod's network namespace file (containerd's bind mount under the state dir), or the lab netns' for host network */
  netnsPath: string;
  /** the sandbox (pause) process */
  pid: number;
}

export interface Background {
  pid: number;
  logFile: string;
  /** resolves when the process has ended */
  done: Promise<RunResult>;
  /** SIGTERM (or the given signal), then SIGKILL after 5 s; resolves when it has ended */
  stop(signal?: NodeJS.Signals): Promise<RunResult>;
}

export class ContainerdLab {
  readonly version: ContainerdVersion;
  readonly bins: ContainerdBinaries;
  /** nqt-ctrd-<hex>: the lab's netns, directory base name and cgroup parent */
  readonly name: string;
  readonly dir: string;
  readonly netns: string;
  readonly netnsPath: string;
  /** containerd's gRPC (CRI) socket */
  readonly address: string;
  readonly nriSocket: string;
  /** NRI plugin_path: executables NN-name here are launched by containerd at start */
  readonly pluginDir: string;
  /** NRI plugin_config_path: NN-name.conf drop-ins */
  readonly pluginConfigDir: string;
  readonly cniConfDir: string;
  /** CNI bin dir: links to /usr/lib/cni's plugins plus LabOptions.cniPlugins */
  readonly cniBinDir: string;
  readonly configFile: string;
  readonly logFile: string;
  readonly subnet: string;
  /** the bridge's address in the lab netns (the pods' gateway): iperf3 peers bind here */
  readonly gateway: string;
  readonly cgroupParent: string;
  readonly cri: CriClient;
  private proc: { pid: number; done: Promise<RunResult> } | undefined;
  private readonly record: LabRecord;
  private readonly pods = new Map<string, Pod>();
  private readonly aliases = new Map<string, string>();
  private torn = false;

  private constructor(version: ContainerdVersion, name: string, subnet: string) {
    this.version = version;
    this.bins = containerdBinaries(version);
    this.name = name;
    this.dir = `${LAB_PARENT}/${name}`;
    this.netns = name;
    this.netnsPath = `/run/netns/${name}`;
    this.address = `${this.dir}/containerd.sock`;
    this.nriSocket = `${this.dir}/nri/nri.sock`;
    this.pluginDir = `${this.dir}/nri-plugins`;
    this.pluginConfigDir = `${this.dir}/nri-conf.d`;
    this.cniConfDir = `${this.dir}/cni/net.d`;
    this.cniBinDir = `${this.dir}/cni/bin`;
    this.configFile = `${this.dir}/containerd.toml`;
    this.logFile = `${this.dir}/containerd.log`;
    this.subnet = subnet;
    this.gateway = subnet.replace(/\.0\/24$/, '.1');
    this.cgroupParent = `/${name}`;
    this.cri = new CriClient(this.address);
    this.record = {
      ownerPid: process.pid,
      ownerStart: startTime(process.pid) ?? '',
      dir: this.dir,
      netns: this.netns,
      address: this.address,
      cgroupParent: this.cgroupParent,
      mntNamespaces: [],
      ids: [],
      createdRunDirs: ['/run/containerd', SHIM_SOCKET_DIR].filter((d) => !existsSync(d)),
    };
  }

  /** Creates the lab (netns, dirs, config, image), starts containerd and imports the image. */
  static async create(opts: LabOptions): Promise<ContainerdLab> {
    const why = labUnavailable();
    if (why) throw new Error(why);
    await sweepStaleLabs();
    const subnet = opts.subnet ?? (opts.version === '2.1' ? '198.19.21.0/24' : '198.19.17.0/24');
    if (!/^198\.1[89]\.\d{1,3}\.0\/24$/.test(subnet)) throw new Error(`subnet ${subnet}: use a /24 in 198.18.0.0/15`);
    let lab: ContainerdLab | undefined;
    for (let attempt = 0; attempt < 8 && !lab; attempt++) {
      const name = `${LAB_PREFIX}${randomBytes(2).toString('hex')}`;
      if (existsSync(`/run/netns/${name}`) || existsSync(`${LAB_PARENT}/${name}`)) continue;
      const add = await run(bin('ip'), ['netns', 'add', name], { allowFail: true });
      if (add.code !== 0) {
        if (/exists/i.test(add.stderr)) continue;
        throw new Error(`ip netns add ${name}: ${add.stderr.trim()}`);
      }
      registerNetns(name);
      lab = new ContainerdLab(opts.version, name, subnet);
    }
    if (!lab) throw new Error('no free nqt-ctrd-<hex> name after 8 attempts');
    try {
      await lab.prepare(opts);
      await lab.start();
      await lab.importImage();
    } catch (e) {
      const tail = lab.logTail(15);
      await lab.teardown().catch(() => undefined);
      throw new Error(`containerd ${opts.version} lab: ${(e as Error).message}${tail ? `\n--- containerd log (last lines) ---\n${tail}` : ''}`);
    }
    return lab;
  }

  private async prepare(opts: LabOptions): Promise<void> {
    const d = this.dir;
    for (const sub of ['root', 'state', 'tmp', 'runc', 'nri', 'opt', 'cni/net.d', 'cni/bin', 'cni-ipam', 'varlib/upper', 'varlib/work', 'nri-plugins', 'nri-conf.d', 'logs', 'pods']) {
      mkdirSync(join(d, sub), { recursive: true });
    }
    saveRecord(this.record);
    // a shared bind mount of the lab dir: containerd's mounts below it (made in its own mount
    // namespace) propagate to the host's
    await must(bin('mount'), ['--bind', d, d]);
    await must(bin('mount'), ['--make-shared', d]);
    await run(bin('ip'), ['-n', this.netns, 'link', 'set', 'lo', 'up']);
    const values = {
      DIR: d,
      ADDRESS: this.address,
      PAUSE_IMAGE,
      CNI_CONF_DIR: this.cniConfDir,
      CNI_BIN_DIR: this.cniBinDir,
      NRI_SOCKET: this.nriSocket,
      NRI_PLUGIN_DIR: this.pluginDir,
      NRI_PLUGIN_CONFIG_DIR: this.pluginConfigDir,
      BRIDGE,
      SUBNET: this.subnet,
      GATEWAY: this.gateway,
    };
    writeFileSync(this.configFile, render(this.version === '2.1' ? 'containerd-2.1.toml' : 'containerd-1.7.toml', values));
    const conflist = JSON.parse(render('10-nqt-bridge.conflist', values)) as { plugins: unknown[] };
    conflist.plugins.push(...(JSON.parse(fill(JSON.stringify(opts.cniChain ?? []), values, 'cniChain')) as unknown[]));
    writeFileSync(join(this.cniConfDir, '10-nqt-bridge.conflist'), `${JSON.stringify(conflist, null, 2)}\n`);
    for (const f of safeReaddir(CNI_SYSTEM_BIN)) symlinkSync(join(CNI_SYSTEM_BIN, f), join(this.cniBinDir, f));
    for (const [file, text] of Object.entries(opts.cniPlugins ?? {})) {
      if (!/^nqt-[a-z0-9-]+$/.test(file)) throw new Error(`CNI plugin ${file}: name it nqt-<name>`);
      writeFileSync(join(this.cniBinDir, file), text, { mode: 0o755 });
    }
    for (const [file, text] of Object.entries(opts.preinstalled ?? {})) this.installPlugin(file, text);
    for (const [file, text] of Object.entries(opts.pluginConfigs ?? {})) writeFileSync(join(this.pluginConfigDir, file), text);
    buildImage(join(d, 'images.tar'), [PAUSE_IMAGE, BUSYBOX_IMAGE]);
  }

  /** Puts an executable NN-name into plugin_path (containerd launches it at its next start). */
  installPlugin(file: string, script: string): string {
    if (!/^\d\d-[A-Za-z0-9_.+-]+$/.test(file)) throw new Error(`NRI plugin file ${file}: must be NN-name`);
    const path = join(this.pluginDir, file);
    writeFileSync(path, script);
    chmodSync(path, 0o755);
    return path;
  }

  removePlugin(file: string): void {
    rmSync(join(this.pluginDir, file), { force: true });
  }

  get pid(): number | undefined {
    return this.proc && pidAlive(this.proc.pid) ? this.proc.pid : undefined;
  }

  /** Starts containerd (mount ns of its own, lab netns) and waits until CRI answers and the NRI socket exists. */
  async start(timeoutMs = 30_000): Promise<void> {
    if (this.pid) throw new Error('containerd already runs');
    const d = this.dir;
    const script =
      `mount -t overlay nqt-ctrd-varlib -o lowerdir=/var/lib,upperdir=${d}/varlib/upper,workdir=${d}/varlib/work /var/lib && ` +
      `exec "$0" --config "$1" >>"$2" 2>&1`;
    let pid = 0;
    const done = run(
      bin('unshare'),
      ['--mount', '--propagation', 'unchanged', bin('nsenter'), `--net=${this.netnsPath}`, bin('sh'), '-c', script, this.bins.containerd, this.configFile, this.logFile],
      {
        timeoutMs: DAEMON_DEADLINE_MS,
        allowFail: true,
        env: { PATH: [this.bins.binDir, ...PATH_DIRS].join(':'), HOME: '/root' },
        onSpawn: (p) => (pid = p),
      },
    );
    done.catch(() => undefined);
    if (!pid) throw new Error('containerd did not start (no pid)');
    registerPid(pid, 'containerd');
    this.proc = { pid, done };
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      if (!pidAlive(pid)) {
        const r = await done.catch((e: Error) => ({ code: -1, stdout: '', stderr: e.message }));
        throw new Error(`containerd exited (code ${r.code}) while starting: ${r.stderr.trim() || this.logTail(5)}`);
      }
      // its mount namespace, once the sh has exec'd containerd in it
      try {
        const mnt = readlinkSync(`/proc/${pid}/ns/mnt`);
        if (!this.record.mntNamespaces.includes(mnt) && mnt !== readlinkSync('/proc/self/ns/mnt')) {
          this.record.mntNamespaces.push(mnt);
          saveRecord(this.record);
        }
      } catch {
        // not yet
      }
      if (existsSync(this.address) && existsSync(this.nriSocket)) {
        try {
          await this.cri.version({ timeoutMs: 2000 });
          return;
        } catch (e) {
          last = (e as Error).message;
        }
      }
      if (Date.now() > deadline) throw new Error(`containerd not ready within ${timeoutMs} ms${last ? ` (${last})` : ''}`);
      await sleep(50);
    }
  }

  /** Stops containerd (SIGTERM, SIGKILL after 15 s); pods and shims keep running, as on a node. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.proc;
    if (!p || !pidAlive(p.pid)) return;
    this.cri.close();
    process.kill(p.pid, signal);
    const deadline = Date.now() + 15_000;
    while (pidAlive(p.pid) && Date.now() < deadline) await sleep(20);
    if (pidAlive(p.pid)) process.kill(p.pid, 'SIGKILL');
    await p.done.catch(() => undefined);
    unregisterPid(p.pid);
    this.proc = undefined;
  }

  async restart(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.stop(signal);
    await this.start();
  }

  private async importImage(): Promise<void> {
    await must(this.bins.ctr, ['-a', this.address, '-n', K8S_NS, 'images', 'import', '--platform', 'linux/amd64', join(this.dir, 'images.tar')], 120_000);
  }

  logTail(lines = 20): string {
    return (readText(this.logFile) ?? '').trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** the containerd log since `fromByte` (take log().length before an action, read what it caused) */
  log(fromByte = 0): string {
    return (readText(this.logFile) ?? '').slice(fromByte);
  }

  private rememberId(id: string): void {
    if (!this.record.ids.includes(id)) {
      this.record.ids.push(id);
      saveRecord(this.record);
    }
  }

  // ----------------------------------------------------------------------------------- pods

  podConfig(o: RunPodOptions): PodSandboxConfig {
    return podConfig({
      name: o.name,
      annotations: o.annotations ?? {},
      labels: o.labels ?? {},
      hostNetwork: !!o.hostNetwork,
      cgroupParent: this.cgroupParent,
      logDirectory: join(this.dir, 'pods', o.name),
    });
  }

  /** RunPodSandbox, then its status: id, IP, netns path, pause pid. Throws CriError as the runtime answers. */
  async runPod(o: RunPodOptions): Promise<Pod> {
    const config = this.podConfig(o);
    const { pod_sandbox_id: id } = await this.cri.runPodSandbox(config, '', { timeoutMs: o.timeoutMs ?? 60_000 });
    this.rememberId(id);
    const pod = await this.podInfo(id, config);
    this.pods.set(id, pod);
    return pod;
  }

  /** PodSandboxStatus (verbose) read into a Pod */
  async podInfo(id: string, config?: PodSandboxConfig): Promise<Pod> {
    const st = await this.cri.podSandboxStatus(id, true);
    const info = parseInfo(st);
    const hostNetwork = st.status.linux?.namespaces?.options?.network === 'NODE';
    const netnsPath = hostNetwork ? this.netnsPath : (info.netnsPath ?? '');
    return {
      id,
      name: st.status.metadata.name,
      config: config ?? this.pods.get(id)?.config ?? this.podConfig({ name: st.status.metadata.name }),
      hostNetwork,
      ip: st.status.network?.ip ?? '',
      netnsPath,
      pid: info.pid ?? 0,
    };
  }

  /**
   * A name under /run/netns for the pod's namespace (`nqt-ctrdp-<hex>`, registered for cleanup),
   * so the fixtures and traffic helpers that take a netns name (ipIn, tcIn, iperfClient,
   * sampleQdiscBytes) work on the pod. stopPod/removePod drop it first: an alias would keep the
   * namespace alive after the pod.
   */
  async podNetnsName(pod: Pod): Promise<string> {
    if (pod.hostNetwork) throw new Error(`pod ${pod.name} uses the node's network namespace`);
    const have = this.aliases.get(pod.id);
    if (have) return have;
    const name = `nqt-ctrdp-${randomBytes(2).toString('hex')}`;
    await must(bin('ip'), ['netns', 'attach', name, String(pod.pid)]);
    registerNetns(name);
    this.aliases.set(pod.id, name);
    return name;
  }

  private async dropAlias(id: string): Promise<void> {
    const a = this.aliases.get(id);
    if (!a) return;
    await run(bin('ip'), ['netns', 'del', a], { allowFail: true });
    this.aliases.delete(id);
  }

  async stopPod(id: string): Promise<void> {
    await this.dropAlias(id);
    await this.cri.stopPodSandbox(id);
  }

  async removePod(id: string): Promise<void> {
    await this.dropAlias(id);
    await this.cri.removePodSandbox(id);
    this.pods.delete(id);
  }

  /** CreateContainer + StartContainer of the busybox image (sleeps until stopped) in a pod */
  async runContainer(pod: Pod, name: string, extra: Partial<ContainerConfig> = {}): Promise<string> {
    const config: ContainerConfig = {
      metadata: { name, attempt: 0 },
      image: { image: BUSYBOX_IMAGE },
      command: SLEEP_FOREVER,
      log_path: `${name}.log`,
      linux: {},
      ...extra,
    };
    const { container_id: id } = await this.cri.createContainer(pod.id, config, pod.config);
    this.rememberId(id);
    await this.cri.startContainer(id);
    return id;
  }

  /** stops and removes every pod and container containerd knows (CRI) */
  async removeAllPods(): Promise<void> {
    for (const c of await this.cri.listContainers()) {
      await this.cri.stopContainer(c.id, 0).catch(() => undefined);
      await this.cri.removeContainer(c.id);
    }
    for (const p of await this.cri.listPodSandbox()) {
      await this.stopPod(p.id);
      await this.removePod(p.id);
    }
  }

  // ----------------------------------------------------------------------------------- processes in the lab

  /** runs a program in the lab netns (host mount namespace), e.g. ip, tc, iperf3 */
  inLabNs(tool: string, args: readonly string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
    return run(bin('nsenter'), [`--net=${this.netnsPath}`, tool.startsWith('/') ? tool : bin(tool), ...args], {
      timeoutMs: opts.timeoutMs ?? 10_000,
      ...(opts.input !== undefined ? { input: opts.input } : {}),
      allowFail: true,
    });
  }

  /**
   * Starts a long-running program in the lab netns (an external NRI plugin, say) with its output
   * in logFile; registered, so it is killed at exit whatever happens. `comm` is what
   * /proc/<pid>/comm will read once it runs (node for a node script).
   */
  startBackground(file: string, args: readonly string[], o: { comm: string; logFile: string; env?: Record<string, string>; timeoutMs?: number }): Background {
    let pid = 0;
    const done = run(bin('nsenter'), [`--net=${this.netnsPath}`, bin('sh'), '-c', 'exec "$@" >>"$0" 2>&1', o.logFile, file, ...args], {
      timeoutMs: o.timeoutMs ?? DAEMON_DEADLINE_MS,
      allowFail: true,
      env: { PATH: PATH_DIRS.join(':'), ...o.env },
      onSpawn: (p) => (pid = p),
    });
    done.catch(() => undefined);
    if (!pid) throw new Error(`${file} did not start`);
    registerPid(pid, o.comm);
    registerFile(o.logFile);
    const settled = done.catch((e: Error) => ({ code: -1, stdout: '', stderr: e.message }));
    return {
      pid,
      logFile: o.logFile,
      done: settled,
      stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
        if (pidAlive(pid)) {
          try {
            process.kill(pid, signal);
          } catch {
            // gone
          }
          const deadline = Date.now() + 5000;
          while (pidAlive(pid) && Date.now() < deadline) await sleep(20);
          if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
        }
        unregisterPid(pid);
        return settled;
      },
    };
  }

  /** processes started by containerd: shims, pods' processes, launched NRI plugins (containerd itself excluded) */
  children(): { pid: number; comm: string; cmdline: string }[] {
    const all = procs();
    const cp = this.proc?.pid;
    return withDescendants(all, (p) => (cp !== undefined && p.ppid === cp) || (p.cmdline.includes(this.address) && p.pid !== cp)).map(
      ({ pid, comm, cmdline }) => ({ pid, comm, cmdline }),
    );
  }

  // ----------------------------------------------------------------------------------- checks

  /**
   * What pods left behind while containerd runs: pod netns files, veths in the lab netns,
   * shims and their processes, cgroups below our parent, mounts below the state dir's sandbox
   * and task dirs, our shim sockets, netns aliases. An empty list means clean.
   */
  async leftovers(opts: { ignorePids?: number[] } = {}): Promise<string[]> {
    const out: string[] = [];
    const netnsDir = join(this.dir, 'state/io.containerd.grpc.v1.cri/netns');
    for (const f of safeReaddir(netnsDir)) out.push(`netns file ${netnsDir}/${f}`);
    const links = await this.inLabNs('ip', ['-o', 'link', 'show', 'type', 'veth']);
    for (const l of links.stdout.split('\n').filter(Boolean)) out.push(`veth ${l.split(': ')[1]?.split('@')[0] ?? l}`);
    const ignore = new Set(opts.ignorePids ?? []);
    for (const p of this.children()) {
      if (!ignore.has(p.pid)) out.push(`process ${p.pid} ${p.comm}`);
    }
    for (const c of cgroupDirs(this.cgroupParent)) {
      for (const sub of safeReaddir(c)) if (isDir(join(c, sub))) out.push(`cgroup ${join(c, sub)}`);
    }
    for (const m of mountPointsUnder(this.dir)) {
      if (m !== this.dir) out.push(`mount ${m}`);
    }
    for (const id of this.record.ids) {
      for (const s of [shimSocketPath(this.address, id), shimSocketPath(this.address, id, true)]) if (existsSync(s)) out.push(`shim socket ${s}`);
    }
    for (const a of this.aliases.values()) out.push(`netns alias ${a}`);
    return out;
  }

  /**
   * Everything gone: pods (CRI, when containerd answers), containerd, shims, pods' processes,
   * launched plugins, mounts, shim sockets, cgroups, the netns, the directory. Throws when
   * something could not be removed (after trying everything).
   */
  async teardown(): Promise<TeardownReport> {
    if (this.torn) return { killed: [], unmounted: [], removedSockets: [], removedCgroups: [], removedNetns: [], problems: [] };
    this.torn = true;
    if (this.pid) {
      try {
        await this.removeAllPods();
      } catch {
        // containerd in a bad state: the hard way below still removes everything
      }
    }
    for (const id of [...this.aliases.keys()]) await this.dropAlias(id);
    this.cri.close();
    const report = await teardownRecord(this.record, this.proc?.pid);
    if (this.proc) unregisterPid(this.proc.pid);
    this.proc = undefined;
    if (report.problems.length > 0) throw new Error(`containerd lab teardown: ${report.problems.join('; ')}`);
    return report;
  }
}

/** containerd's verbose PodSandboxStatus info: {"info": "{\"pid\":..., \"runtimeSpec\": {...}}"} */
function parseInfo(st: PodSandboxStatusResponse): { pid?: number; netnsPath?: string } {
  const raw = st.info?.info;
  if (!raw) return {};
  try {
    const j = JSON.parse(raw) as { pid?: number; runtimeSpec?: { linux?: { namespaces?: { type: string; path?: string }[] } } };
    const ns = j.runtimeSpec?.linux?.namespaces?.find((n) => n.type === 'network');
    return { ...(j.pid ? { pid: j.pid } : {}), ...(ns?.path ? { netnsPath: ns.path } : {}) };
  } catch {
    return {};
  }
}

/** startLab = ContainerdLab.create */
export function startLab(opts: LabOptions): Promise<ContainerdLab> {
  return ContainerdLab.create(opts);
}
