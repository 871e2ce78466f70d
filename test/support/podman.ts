/**
 * A real rootful podman lab for end-to-end tests (podman 4.3 + crun + runc + netavark), isolated
 * from the machine and from other people's tests:
 *
 * - every file under LAB_DIR (/tmp/nqt-podman): config, storage (graphroot), runroot, tmp;
 * - podman, conmon, netavark, crun/runc and therefore the OCI hooks run in the network namespace
 *   `nqt-pmhost` (the podman0 bridge, the NAT rules and the macvlan parent live there, never in
 *   the real root netns) and in a pinned private mount namespace in which the cgroup2 mount
 *   /sys/fs/cgroup/unified is hidden (crun 1.8 refuses this hybrid-cgroup host otherwise);
 * - `nqt-pmpeer` stands in for an external host: it holds the far end `nqt-pmv1`
 *   (PEER_IP/24) of the veth `nqt-pmv0`, the parent of the macvlan network MACVLAN_NETWORK;
 * - IMAGE is busybox-static + iperf3 + tc + ip, imported without a registry. Inside it call
 *   /usr/sbin/ip and /usr/sbin/tc by full path (busybox sh prefers its own applets).
 *
 * Derived from /work/shared/testbeds/podman (RECIPE.md, REPORT.md). Needs root; call
 * labUnavailable() first and skip with its reason.
 *
 *   beforeAll(() => setupLab());          // ~1 s from nothing, ~0.3 s after a teardown, ~15 ms when up
 *   await podman(['run', '--rm', IMAGE, 'true']);
 *   afterAll(() => teardownLab());        // optional, 0.4-0.9 s; leaves no netns, link, mount,
 *                                         // process or cgroup of ours; keeps storage (image)
 *
 * setupLab({ hooksDir }) rewrites containers.conf's hooks_dir (the next setupLab() without it
 * restores DEFAULT_HOOKS_DIR); podman(args, { hooksDir }) overrides it for one call. One lab per
 * machine: setup and teardown take a lock, but a teardown still pulls the lab from under anyone
 * using it.
 */
import { spawn } from 'node:child_process';
import {
  accessSync,
  chmodSync,
  constants,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  rmdirSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isDir, safeReaddir } from './fs-quiet.js';
import { run, type RunResult } from '../../src/kernel/runner.js';

// ------------------------------------------------------------------------------------- names

export const LAB_DIR = '/tmp/nqt-podman';
export const HOST_NS = 'nqt-pmhost';
export const PEER_NS = 'nqt-pmpeer';
/** the peer namespace's name (for `ip -n`, `/run/netns/<name>`) */
export const peerNs = PEER_NS;
export const HOST_NS_PATH = `/run/netns/${HOST_NS}`;
export const PEER_NS_PATH = `/run/netns/${PEER_NS}`;
/** veth in nqt-pmhost: the macvlan parent */
export const MACVLAN_PARENT = 'nqt-pmv0';
/** its far end, in nqt-pmpeer */
export const PEER_LINK = 'nqt-pmv1';
export const MACVLAN_NETWORK = 'nqt-macvlan';
export const MACVLAN_SUBNET = '172.31.77.0/24';
export const MACVLAN_GATEWAY = '172.31.77.1';
/** containers on MACVLAN_NETWORK get 172.31.77.16 to .31 */
export const MACVLAN_RANGE = '172.31.77.16/28';
export const PEER_IP = '172.31.77.250';
/** podman's default bridge network (podman0, 10.88.0.0/16 in nqt-pmhost, exists only while used) */
export const BRIDGE_NETWORK = 'podman';
export const BRIDGE_GATEWAY = '10.88.0.1';
export const IMAGE = 'localhost/nqt-bw:latest';
export const DEFAULT_HOOKS_DIR = `${LAB_DIR}/hooks.d`;
/** the pinned mount namespace podman runs in */
export const MOUNT_NS = `${LAB_DIR}/ns/mnt`;
/** a shell wrapper with the same effect as podman(), for humans: `/tmp/nqt-podman/pm ps -a` */
export const WRAPPER = `${LAB_DIR}/pm`;

/**
 * hooks.d `when.annotations` selecting netqos' annotations, as ONE key/value pair: the Kubernetes
 * keys themselves (podman, containerd: any value not starting with `{`) and CRI-O's
 * `io.kubernetes.cri-o.Annotations` (a JSON object of all annotations) when it names one of them.
 *
 * Measured with podman 4.3 (containers/common 0.50): ALL pairs of `when.annotations` must match
 * (oci-hooks(5): "If all annotations key/value pairs match ..."), and `"or": true` is ignored. A
 * file with two pairs, one per key, therefore never fires on podman. Keys and values are Go
 * regexps, values unanchored.
 */
export const BANDWIDTH_WHEN: Readonly<Record<string, string>> = {
  '^(kubernetes\\.io/(ingress|egress)-bandwidth|io\\.kubernetes\\.cri-o\\.Annotations)$':
    '^$|^[^{]|"kubernetes\\.io/(ingress|egress)-bandwidth"',
};

/** the two pairs the naive way, one per key: never matches under podman (kept to prove it in tests) */
export const BANDWIDTH_WHEN_TWO_PAIRS: Readonly<Record<string, string>> = {
  '^kubernetes\\.io/(ingress|egress)-bandwidth$': '.*',
  '^io\\.kubernetes\\.cri-o\\.Annotations$': '"kubernetes\\.io/(ingress|egress)-bandwidth"',
};

const ETC = `${LAB_DIR}/etc`;
const CONTAINERS_CONF = `${ETC}/containers.conf`;
const STORAGE_CONF = `${ETC}/storage.conf`;
const NETWORK_DIR = `${ETC}/networks`;
const GRAPHROOT = `${LAB_DIR}/storage`;
const RUNROOT = `${LAB_DIR}/run`;
const TMP = `${LAB_DIR}/tmp`;
const STATE = `${LAB_DIR}/state`;
const READY = `${STATE}/ready.json`;
const CGROUP_MARK = `${STATE}/cgroups-created-by-lab.json`;
const IDS_FILE = `${STATE}/ids-with-cgroups-left.json`;
const NS_DIR = `${LAB_DIR}/ns`;
const IMAGE_DIR = `${LAB_DIR}/image`;
const LOCK = '/tmp/nqt-podman.lock';
const CGROUP_ROOT = '/sys/fs/cgroup';
const LIBPOD_PARENT = 'libpod_parent';
const PATH_ENV = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** bump when the layout changes, so that an old lab is rebuilt */
const LAB_VERSION = 1;

// ------------------------------------------------------------------------------------- types

export type Runtime = 'crun' | 'runc';

export interface LabOptions {
  /** hooks_dir written into containers.conf; default DEFAULT_HOOKS_DIR (created if missing) */
  hooksDir?: string;
  /** default OCI runtime (containers.conf engine.runtime); per run: `--runtime runc` */
  runtime?: Runtime;
}

export interface Lab {
  dir: string;
  hostNs: string;
  peerNs: string;
  peerIp: string;
  macvlanNetwork: string;
  macvlanParent: string;
  bridgeNetwork: string;
  bridgeGateway: string;
  image: string;
  hooksDir: string;
  runtime: Runtime;
  mountNs: string;
  wrapper: string;
  /** true when setupLab found everything in place and did (almost) nothing */
  wasReady: boolean;
  /** what setupLab did, in order, with milliseconds */
  steps: string[];
}

export interface PodmanOptions {
  /** deadline; the podman process is SIGKILLed when it passes. default 60 000 */
  timeoutMs?: number;
  /** written to podman's stdin */
  input?: string;
  /** global `--hooks-dir` (replaces the configured hooks_dir for this call) */
  hooksDir?: string;
}

export interface TeardownOptions {
  /** also delete storage (images), config and everything else under LAB_DIR */
  purge?: boolean;
}

export interface TeardownReport {
  killed: string[];
  unmounted: string[];
  removedNetns: string[];
  removedCgroups: string[];
  /** what could not be removed, and why */
  problems: string[];
  ms: number;
}

// ------------------------------------------------------------------------------------- small helpers

const BIN_DIRS = PATH_ENV.split(':');

/** absolute path of a program (PATH-free, like src/kernel/tools.ts) */
export function bin(name: string): string {
  for (const dir of BIN_DIRS) {
    const candidate = `${dir}/${name}`;
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new Error(`${name} not found in ${PATH_ENV}`);
}

function hasBin(name: string): boolean {
  try {
    bin(name);
    return true;
  } catch {
    return false;
  }
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** writes only when the content differs; true when written */
function writeIfChanged(path: string, content: string, mode?: number): boolean {
  if (readText(path) === content) return false;
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
  if (mode !== undefined) chmodSync(path, mode);
  return true;
}

function inode(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

function nsLink(pid: number | string, kind: 'net' | 'mnt'): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/${kind}`);
  } catch {
    return undefined;
  }
}

/** mount points in this process's mount namespace */
function mountPoints(): string[] {
  const text = readText('/proc/self/mountinfo') ?? '';
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => (l.split(' ')[4] ?? '').replace(/\\040/g, ' '));
}

function isMountPoint(path: string): boolean {
  return mountPoints().includes(path);
}

function pinned(): boolean {
  return isMountPoint(MOUNT_NS);
}

async function sh(file: string, args: readonly string[], timeoutMs = 20_000): Promise<RunResult> {
  return run(file, args, { timeoutMs, allowFail: true });
}

async function must(file: string, args: readonly string[], timeoutMs = 20_000): Promise<string> {
  const r = await run(file, args, { timeoutMs, allowFail: true });
  if (r.code !== 0) {
    throw new Error(`${file} ${args.join(' ')} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
  }
  return r.stdout;
}

/** why the lab cannot run here, or undefined when it can */
export function labUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'the podman lab needs root';
  const missing = ['podman', 'crun', 'runc', 'conmon', 'nsenter', 'unshare', 'ip', 'tc', 'iperf3', 'busybox', 'tar', 'ldd', 'mount', 'umount'].filter(
    (b) => !hasBin(b),
  );
  if (!existsSync('/usr/lib/podman/netavark') && !existsSync('/usr/libexec/podman/netavark')) missing.push('netavark');
  if (missing.length) return `missing programs: ${missing.join(', ')} (test/prepare.sh installs them)`;
  return undefined;
}

// ------------------------------------------------------------------------------------- lock

/** one setup/teardown at a time across processes (mkdir is atomic); a dead holder's lock is taken over */
async function withLock<T>(fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      mkdirSync(LOCK);
      writeFileSync(`${LOCK}/pid`, String(process.pid));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = Number(readText(`${LOCK}/pid`));
      if (holder === process.pid) break; // re-entrant (setupLab -> teardown)
      const alive = holder > 0 && existsSync(`/proc/${holder}`);
      if (!alive && (holder > 0 || Date.now() - (statSafe(LOCK)?.mtimeMs ?? 0) > 5000)) {
        rmSync(LOCK, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`podman lab is locked by pid ${holder} (${LOCK})`);
      await sleep(100);
    }
  }
  try {
    return await fn();
  } finally {
    if (Number(readText(`${LOCK}/pid`)) === process.pid) rmSync(LOCK, { recursive: true, force: true });
  }
}

function statSafe(path: string): { mtimeMs: number } | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

// ------------------------------------------------------------------------------------- podman

function podmanPath(): string {
  return bin('podman');
}

/** environment podman runs with (also what the conmon exit command, hence poststop, inherits) */
export function labEnv(): Record<string, string> {
  return {
    PATH: PATH_ENV,
    HOME: '/root',
    LC_ALL: 'C',
    TMPDIR: TMP,
    CONTAINERS_CONF,
    CONTAINERS_STORAGE_CONF: STORAGE_CONF,
  };
}

/**
 * argv that runs podman in the lab: nsenter into the lab mount ns and nqt-pmhost, with the lab env.
 * Use it to spawn podman yourself (long-running `podman run` without -d, hyperfine).
 */
export function podmanCommand(args: readonly string[], opts: Pick<PodmanOptions, 'hooksDir'> = {}): [string, string[]] {
  const cwd = process.cwd();
  // PWD matters: without it, building the local pause image (first `pod create`) fails with
  // "COPY ... determining current working directory: getwd: no such file or directory"
  const env = Object.entries({ ...labEnv(), PWD: cwd }).map(([k, v]) => `${k}=${v}`);
  const global = opts.hooksDir ? ['--hooks-dir', opts.hooksDir] : [];
  return [
    bin('nsenter'),
    [`--mount=${MOUNT_NS}`, `--net=${HOST_NS_PATH}`, `--wd=${cwd}`, bin('env'), '-i', ...env, podmanPath(), ...global, ...args],
  ];
}

/** runs podman in the lab; never throws for a non-zero exit (check .code), throws on timeout */
export async function podman(args: readonly string[], opts: PodmanOptions = {}): Promise<RunResult> {
  if (!pinned() || !existsSync(HOST_NS_PATH)) throw new Error('podman lab is not set up: call setupLab() first');
  const [file, argv] = podmanCommand(args, opts);
  return run(file, argv, { timeoutMs: opts.timeoutMs ?? 60_000, input: opts.input, allowFail: true });
}

/** podman(), but throws unless it exits 0; returns stdout trimmed */
export async function podmanOk(args: readonly string[], opts: PodmanOptions = {}): Promise<string> {
  const r = await podman(args, opts);
  if (r.code !== 0) throw new Error(`podman ${args.join(' ')} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
  return r.stdout.trim();
}

/**
 * `--annotation key=value` for podman. podman parses the flag as CSV (a StringSlice), so a value
 * with a quote or a comma (CRI-O's JSON `io.kubernetes.cri-o.Annotations`) has to be CSV-quoted.
 */
export function annotationArgs(key: string, value: string): string[] {
  const kv = `${key}=${value}`;
  return ['--annotation', /[",\n]/.test(kv) ? `"${kv.replace(/"/g, '""')}"` : kv];
}

/** host PID of a running container's init (throws when it is not running) */
export async function containerPid(name: string): Promise<number> {
  const pid = Number(await podmanOk(['inspect', '--type', 'container', '-f', '{{.State.Pid}}', name], { timeoutMs: 15_000 }));
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`container ${name} is not running (pid ${pid})`);
  return pid;
}

/**
 * the container's network namespace as a path usable from the host: podman's
 * /run/netns/netns-<uuid> for bridge/macvlan/none, else /proc/<pid>/ns/net (host network,
 * `container:` and pod members report no sandbox key of their own)
 */
export async function containerNetns(name: string): Promise<string> {
  const key = await podmanOk(['inspect', '--type', 'container', '-f', '{{.NetworkSettings.SandboxKey}}', name], { timeoutMs: 15_000 });
  if (key && existsSync(key)) return key;
  return `/proc/${await containerPid(name)}/ns/net`;
}

/** runs a host tool (ip, tc, ...) inside a running container's netns, from the host side */
export async function inContainerNs(
  name: string,
  tool: string,
  args: readonly string[],
  opts: { timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  const pid = await containerPid(name);
  return run(bin('nsenter'), [`--net=/proc/${pid}/ns/net`, tool.startsWith('/') ? tool : bin(tool), ...args], {
    timeoutMs: opts.timeoutMs ?? 10_000,
    input: opts.input,
    allowFail: true,
  });
}

/** runs a tool in nqt-pmhost ('host') or nqt-pmpeer ('peer'), e.g. `ip -o addr`, a bounded iperf3 client */
export async function inLabNs(
  which: 'host' | 'peer',
  tool: string,
  args: readonly string[],
  opts: { timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  const ns = which === 'host' ? HOST_NS_PATH : PEER_NS_PATH;
  return run(bin('nsenter'), [`--net=${ns}`, tool.startsWith('/') ? tool : bin(tool), ...args], {
    timeoutMs: opts.timeoutMs ?? 10_000,
    input: opts.input,
    allowFail: true,
  });
}

export interface Background {
  pid: number;
  /** resolves when the process ends (killed at its deadline) */
  done: Promise<RunResult>;
  /** SIGKILL (by PID) and wait */
  stop(): Promise<RunResult>;
}

/**
 * starts a bounded background process in nqt-pmhost or nqt-pmpeer (an `iperf3 -s -1` server):
 * SIGKILLed after timeoutMs (default 30 s); teardownLab also kills anything left in these netns.
 */
export function startInLabNs(which: 'host' | 'peer', tool: string, args: readonly string[], opts: { timeoutMs?: number } = {}): Background {
  const ns = which === 'host' ? HOST_NS_PATH : PEER_NS_PATH;
  const child = spawn(bin('nsenter'), [`--net=${ns}`, tool.startsWith('/') ? tool : bin(tool), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { LC_ALL: 'C', PATH: PATH_ENV },
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
  const done = new Promise<RunResult>((resolve) => {
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout: '', stderr: String(e) });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 128, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
  });
  return {
    pid: child.pid ?? -1,
    done,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      return done;
    },
  };
}

/** writes a hooks.d JSON file (file name without directory) into hooksDir (default DEFAULT_HOOKS_DIR) */
export function writeHookConfig(fileName: string, config: unknown, hooksDir = DEFAULT_HOOKS_DIR): string {
  const path = join(hooksDir, fileName);
  mkdirSync(hooksDir, { recursive: true });
  writeFileSync(path, `${JSON.stringify(config, null, 2)}\n`);
  return path;
}

export function removeHookConfig(fileName: string, hooksDir = DEFAULT_HOOKS_DIR): void {
  rmSync(join(hooksDir, fileName), { force: true });
}

// ------------------------------------------------------------------------------------- setup

function hardLimit(name: string): number | 'unlimited' {
  const line = (readText('/proc/self/limits') ?? '').split('\n').find((l) => l.startsWith(name));
  const hard = line?.slice(name.length).trim().split(/\s+/)[1];
  if (!hard || hard === 'unlimited') return 'unlimited';
  return Number(hard);
}

/**
 * default_ulimits as in the testbed: root here lacks CAP_SYS_RESOURCE, so the container's rlimits
 * may not exceed podman's own (nofile = our hard limit; nproc = min(hard limit, kernel.pid_max),
 * which is what podman's RLIMIT_NPROC ends up at).
 */
function ulimits(): { nofile: number; nproc: number } {
  const nofileHard = hardLimit('Max open files');
  const nofile = nofileHard === 'unlimited' ? 1048576 : nofileHard;
  const pidMax = Number(readText('/proc/sys/kernel/pid_max')?.trim() ?? 32768);
  const nprocHard = hardLimit('Max processes');
  const nproc = nprocHard === 'unlimited' ? pidMax : Math.min(nprocHard, pidMax);
  return { nofile, nproc };
}

function containersConf(hooksDir: string, runtime: Runtime): string {
  const { nofile, nproc } = ulimits();
  return `# generated by test/support/podman.ts
[containers]
log_driver = "k8s-file"
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "${RUNROOT}/events.log"
tmp_dir = "${RUNROOT}/libpod"
image_copy_tmp_dir = "${TMP}"
hooks_dir = [${JSON.stringify(hooksDir)}]
runtime = "${runtime}"

[network]
network_backend = "netavark"
network_config_dir = "${NETWORK_DIR}"
`;
}

const STORAGE_CONF_TEXT = `# generated by test/support/podman.ts
[storage]
driver = "overlay"
graphroot = "${GRAPHROOT}"
runroot = "${RUNROOT}/storage"
`;

function wrapperScript(): string {
  const env = Object.entries(labEnv())
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return `#!/bin/sh
# podman in the netqos test lab (generated by test/support/podman.ts): lab config, storage,
# mount ns ${MOUNT_NS} and network ns ${HOST_NS}. --wd: entering a mount ns resets the cwd.
# PWD: the local pause image build (first pod create) fails with "getwd: no such file" without it.
exec ${bin('nsenter')} --mount=${MOUNT_NS} --net=${HOST_NS_PATH} --wd="$PWD" ${bin('env')} -i ${env} PWD="$PWD" ${podmanPath()} "$@"
`;
}

interface ReadyStamp {
  version: number;
  mnt: number;
  host: number;
  peer: number;
  imageId: string;
}

function imageStored(id: string): boolean {
  return /^[0-9a-f]{64}$/.test(id) && existsSync(`${GRAPHROOT}/overlay-images/${id}`);
}

/** all the cheap checks of an existing lab (no process started) */
function stampValid(): ReadyStamp | undefined {
  let stamp: ReadyStamp;
  try {
    stamp = JSON.parse(readText(READY) ?? '') as ReadyStamp;
  } catch {
    return undefined;
  }
  if (stamp.version !== LAB_VERSION) return undefined;
  if (!pinned() || inode(MOUNT_NS) !== stamp.mnt) return undefined;
  if (inode(HOST_NS_PATH) !== stamp.host || inode(PEER_NS_PATH) !== stamp.peer) return undefined;
  if (!imageStored(stamp.imageId)) return undefined;
  if (!existsSync(`${NETWORK_DIR}/${MACVLAN_NETWORK}.json`)) return undefined;
  if (readText(STORAGE_CONF) !== STORAGE_CONF_TEXT) return undefined;
  return stamp;
}

/** makes sure the lab is up; idempotent, cheap when it already is, rebuilds what a dead run left half-done */
export async function setupLab(opts: LabOptions = {}): Promise<Lab> {
  const why = labUnavailable();
  if (why) throw new Error(why);
  const hooksDir = opts.hooksDir ?? DEFAULT_HOOKS_DIR;
  const runtime = opts.runtime ?? 'crun';
  const steps: string[] = [];
  let t = performance.now();
  const step = (what: string): void => {
    const now = performance.now();
    steps.push(`${what} ${(now - t).toFixed(0)} ms`);
    t = now;
  };
  return withLock(async () => {
    mkdirSync(hooksDir, { recursive: true });
    const confChanged = writeIfChanged(CONTAINERS_CONF, containersConf(hooksDir, runtime));
    writeIfChanged(WRAPPER, wrapperScript(), 0o755);
    let wasReady = false;
    if (stampValid()) {
      // the stamp proves namespaces, pin, image and network; the veth could have been deleted by hand
      const veth = await sh(bin('ip'), ['-n', HOST_NS, '-o', 'link', 'show', MACVLAN_PARENT], 5000);
      wasReady = veth.code === 0;
      step(wasReady ? 'lab already up' : 'lab up but veth missing');
    }
    if (!wasReady) await buildLab(step);
    else if (confChanged) step('containers.conf updated');
    return {
      dir: LAB_DIR,
      hostNs: HOST_NS,
      peerNs: PEER_NS,
      peerIp: PEER_IP,
      macvlanNetwork: MACVLAN_NETWORK,
      macvlanParent: MACVLAN_PARENT,
      bridgeNetwork: BRIDGE_NETWORK,
      bridgeGateway: BRIDGE_GATEWAY,
      image: IMAGE,
      hooksDir,
      runtime,
      mountNs: MOUNT_NS,
      wrapper: WRAPPER,
      wasReady,
      steps,
    };
  });
}

async function buildLab(step: (what: string) => void): Promise<void> {
  // A lab whose mount ns is not pinned (a reboot, a crash between teardown steps) may have left
  // netns, processes, container netns and runroot state: clear them first.
  if (!pinned() && (existsSync(HOST_NS_PATH) || existsSync(PEER_NS_PATH) || existsSync(RUNROOT))) {
    const r = await teardownUnlocked({});
    step(`cleared a half-built lab (${r.killed.length} processes killed)`);
  }
  for (const d of [ETC, NETWORK_DIR, GRAPHROOT, RUNROOT, TMP, STATE, NS_DIR, IMAGE_DIR]) mkdirSync(d, { recursive: true });
  writeIfChanged(STORAGE_CONF, STORAGE_CONF_TEXT);
  writeIfChanged(WRAPPER, wrapperScript(), 0o755);
  rememberCgroups();
  step('config');

  await ensureNetns();
  step('netns + veth');

  if (!pinned()) {
    if (!isMountPoint(NS_DIR)) await must(bin('mount'), ['--bind', NS_DIR, NS_DIR]);
    // an nsfs file can only be pinned on a private mount
    await must(bin('mount'), ['--make-private', NS_DIR]);
    writeFileSync(MOUNT_NS, '');
    // Inside the new mount ns only: make /sys/fs/cgroup private first so that the umount cannot
    // propagate, then hide the cgroup2 'unified' mount. --propagation unchanged keeps /run/netns
    // shared, so podman's /run/netns/netns-<uuid> files are visible (and usable) from the host.
    await must(bin('unshare'), [
      `--mount=${MOUNT_NS}`,
      '--propagation',
      'unchanged',
      bin('sh'),
      '-c',
      'if [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ] && [ "$(stat -fc %T /sys/fs/cgroup)" = tmpfs ]; then ' +
        'mount --make-rprivate /sys/fs/cgroup && umount /sys/fs/cgroup/unified; fi',
    ]);
    step('mount ns pinned');
  }

  const imageId = await ensureImage();
  step('image');
  await ensureMacvlan();
  step('macvlan network');

  const stamp: ReadyStamp = {
    version: LAB_VERSION,
    mnt: inode(MOUNT_NS) ?? 0,
    host: inode(HOST_NS_PATH) ?? 0,
    peer: inode(PEER_NS_PATH) ?? 0,
    imageId,
  };
  writeFileSync(READY, `${JSON.stringify(stamp)}\n`);
}

async function ensureNetns(): Promise<void> {
  const ip = bin('ip');
  for (const ns of [HOST_NS, PEER_NS]) {
    if (!existsSync(`/run/netns/${ns}`)) await must(ip, ['netns', 'add', ns]);
  }
  const host = await sh(ip, ['-n', HOST_NS, '-o', 'link', 'show', MACVLAN_PARENT]);
  const peer = await sh(ip, ['-n', PEER_NS, '-o', 'link', 'show', PEER_LINK]);
  if (host.code !== 0 || peer.code !== 0) {
    // half a pair cannot exist; a same-named stray on one side would block the add
    if (host.code === 0) await sh(ip, ['-n', HOST_NS, 'link', 'del', MACVLAN_PARENT]);
    if (peer.code === 0) await sh(ip, ['-n', PEER_NS, 'link', 'del', PEER_LINK]);
    await must(ip, ['-n', HOST_NS, 'link', 'add', MACVLAN_PARENT, 'type', 'veth', 'peer', 'name', PEER_LINK, 'netns', PEER_NS]);
  }
  await run(ip, ['-n', HOST_NS, '-batch', '-'], { input: `link set lo up\nlink set ${MACVLAN_PARENT} up\n` });
  await run(ip, ['-n', PEER_NS, '-batch', '-'], {
    input: `link set lo up\naddr replace ${PEER_IP}/24 dev ${PEER_LINK}\nlink set ${PEER_LINK} up\n`,
  });
}

/** busybox-static + iperf3 + tc + ip (with the libraries ldd lists), imported with `podman import` */
async function ensureImage(): Promise<string> {
  const exists = await podman(['image', 'inspect', '-f', '{{.Id}}', IMAGE], { timeoutMs: 30_000 });
  if (exists.code === 0 && imageStored(exists.stdout.trim())) return exists.stdout.trim();
  const root = `${IMAGE_DIR}/rootfs`;
  rmSync(root, { recursive: true, force: true });
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'run', 'root']) {
    mkdirSync(`${root}/${d}`, { recursive: true });
  }
  const busybox = existsSync('/bin/busybox') ? '/bin/busybox' : bin('busybox');
  copyFileSync(busybox, `${root}/bin/busybox`);
  chmodSync(`${root}/bin/busybox`, 0o755);
  const applets = (await must(busybox, ['--list'])).split('\n').filter((a) => a && a !== 'busybox' && a !== 'ip' && a !== 'tc');
  for (const a of applets) {
    if (!existsSync(`${root}/bin/${a}`)) symlinkSync('busybox', `${root}/bin/${a}`);
  }
  for (const b of [bin('iperf3'), bin('tc'), bin('ip')]) {
    const dest = `${root}${b}`;
    mkdirSync(dirname(dest), { recursive: true });
    copyFileSync(b, dest);
    chmodSync(dest, 0o755);
    const libs = (await must(bin('ldd'), [b])).match(/\/[^\s)]+/g) ?? [];
    for (const lib of libs) {
      if (existsSync(`${root}${lib}`)) continue;
      mkdirSync(dirname(`${root}${lib}`), { recursive: true });
      copyFileSync(lib, `${root}${lib}`);
    }
  }
  writeFileSync(`${root}/etc/passwd`, 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(`${root}/etc/group`, 'root:x:0:\n');
  const tar = `${IMAGE_DIR}/rootfs.tar`;
  await must(bin('tar'), ['-C', root, '-cf', tar, '.'], 60_000);
  await podmanOk(['import', '--quiet', '--change', 'CMD ["/bin/sh"]', tar, IMAGE], { timeoutMs: 120_000 });
  rmSync(root, { recursive: true, force: true });
  rmSync(tar, { force: true });
  return podmanOk(['image', 'inspect', '-f', '{{.Id}}', IMAGE], { timeoutMs: 30_000 });
}

async function ensureMacvlan(): Promise<void> {
  if (existsSync(`${NETWORK_DIR}/${MACVLAN_NETWORK}.json`)) return;
  await podmanOk(
    [
      'network',
      'create',
      '--driver',
      'macvlan',
      '-o',
      `parent=${MACVLAN_PARENT}`,
      '--subnet',
      MACVLAN_SUBNET,
      '--gateway',
      MACVLAN_GATEWAY,
      '--ip-range',
      MACVLAN_RANGE,
      MACVLAN_NETWORK,
    ],
    { timeoutMs: 30_000 },
  );
}

// ------------------------------------------------------------------------------------- cgroups

function cgroupHierarchies(): string[] {
  try {
    return readdirSync(CGROUP_ROOT)
      .map((d) => `${CGROUP_ROOT}/${d}`)
      .filter((p) => {
        try {
          return statSync(p).isDirectory();
        } catch {
          return false;
        }
      });
  } catch {
    return [];
  }
}

/**
 * Before podman first runs: note the hierarchies without a libpod_parent. Only those may be
 * removed by teardown (when empty): a libpod_parent that existed before belongs to someone else.
 * The note survives a crashed run and is only dropped by a teardown that processed it.
 */
function rememberCgroups(): void {
  if (existsSync(CGROUP_MARK)) return;
  const created = cgroupHierarchies()
    .map((h) => `${h}/${LIBPOD_PARENT}`)
    .filter((p) => !existsSync(p));
  writeFileSync(CGROUP_MARK, `${JSON.stringify({ mayRemove: created, notedAt: new Date().toISOString() })}\n`);
}

/**
 * Removes the empty cgroups our runs left: libpod_parent/<pod id> trees and libpod-<ctr id> of
 * ids our lab created (podman 4.3 with cgroupfs leaves the pod's directory in the name=systemd
 * hierarchy after `pod rm`), then conmon/ and libpod_parent itself where our lab created it.
 * rmdir only: a cgroup with processes (or children) is never removed. Returns the ids that still
 * have a directory somewhere.
 */
function removeOurCgroups(ourIds: Set<string>, report: TeardownReport): Set<string> {
  let mayRemove: string[] = [];
  try {
    mayRemove = (JSON.parse(readText(CGROUP_MARK) ?? '{}') as { mayRemove?: string[] }).mayRemove ?? [];
  } catch {
    mayRemove = [];
  }
  const ourParents = new Set(mayRemove);
  const left = new Set<string>();
  const tryRmdir = (p: string): void => {
    try {
      rmdirSync(p);
      report.removedCgroups.push(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') report.problems.push(`cgroup ${p} kept: ${code}`);
    }
  };
  let kept = false;
  for (const h of cgroupHierarchies()) {
    const parent = `${h}/${LIBPOD_PARENT}`;
    if (!existsSync(parent)) continue;
    for (const child of safeReaddir(parent)) {
      const id = child.replace(/^(libpod|conmon)-/, '');
      if (!ourIds.has(id) || !isDir(`${parent}/${child}`)) continue;
      removeTree(`${parent}/${child}`, tryRmdir);
      if (existsSync(`${parent}/${child}`)) left.add(id);
    }
    if (!ourParents.has(parent)) continue;
    const children = safeReaddir(parent).filter((c) => isDir(`${parent}/${c}`));
    // nothing but (an empty) conmon/ left: podman's conmon parent of our runs
    if (children.every((c) => c === 'conmon')) {
      if (children.length) tryRmdir(`${parent}/conmon`);
      tryRmdir(parent);
    } else {
      kept = true;
      report.problems.push(`cgroup ${parent} kept: still has ${children.join(', ')}`);
    }
  }
  if (!kept) rmSync(CGROUP_MARK, { force: true });
  return left;
}

function removeTree(path: string, rmdir: (p: string) => void): void {
  for (const c of safeReaddir(path)) {
    if (isDir(`${path}/${c}`)) removeTree(`${path}/${c}`, rmdir);
  }
  rmdir(path);
}



// ------------------------------------------------------------------------------------- teardown

/** ids of the containers (and infra containers) in our storage */
function ourContainerIds(): string[] {
  return safeReaddir(`${GRAPHROOT}/overlay-containers`).filter((d) => /^[0-9a-f]{64}$/.test(d));
}

/**
 * Every container and pod id our lab has created: storage, the events log (podman's file events
 * logger, in the runroot) and the ids an earlier teardown could not finish with.
 */
function knownIds(): Set<string> {
  const ids = new Set(ourContainerIds());
  const events = readText(`${RUNROOT}/events.log`) ?? '';
  for (const m of events.matchAll(/"(?:ID|PodID)":"([0-9a-f]{64})"/g)) if (m[1]) ids.add(m[1]);
  try {
    for (const id of JSON.parse(readText(IDS_FILE) ?? '[]') as unknown[]) {
      if (typeof id === 'string' && /^[0-9a-f]{64}$/.test(id)) ids.add(id);
    }
  } catch {
    // unreadable: start over
  }
  return ids;
}

/** netns paths and pod ids (cgroup parents) named by our containers' config.json */
function bundleFacts(ids: string[]): { netns: string[]; cgroupIds: Set<string> } {
  const netns: string[] = [];
  const cgroupIds = new Set(ids);
  for (const id of ids) {
    const text = readText(`${GRAPHROOT}/overlay-containers/${id}/userdata/config.json`);
    if (!text) continue;
    try {
      const spec = JSON.parse(text) as {
        linux?: { namespaces?: { type: string; path?: string }[]; cgroupsPath?: string };
      };
      for (const ns of spec.linux?.namespaces ?? []) {
        if (ns.type === 'network' && ns.path?.startsWith('/run/netns/netns-')) netns.push(ns.path);
      }
      // cgroupfs: /libpod_parent/libpod-<id> or /libpod_parent/<podid>/libpod-<id>
      const m = /\/libpod_parent\/([0-9a-f]{64})\//.exec(spec.linux?.cgroupsPath ?? '');
      if (m?.[1]) cgroupIds.add(m[1]);
    } catch {
      // a half-written config.json
    }
  }
  return { netns, cgroupIds };
}

const OUR_COMMS = new Set(['podman', 'conmon', 'crun', 'runc', 'runc:[2:INIT]', 'catatonit', 'netavark', 'aardvark-dns']);

/**
 * Processes that can only be ours: in the lab mount ns or in nqt-pmhost/nqt-pmpeer; podman's own
 * programs whose command line names LAB_DIR (conmon of a lab whose mount ns pin is already gone);
 * processes in the cgroup of one of our containers; and all their descendants (container
 * processes are children of conmon). Never this process or its ancestors.
 */
export function labProcesses(ids: Iterable<string> = ourContainerIds()): { pid: number; what: string }[] {
  const mnt = pinned() ? inode(MOUNT_NS) : undefined;
  const nets = [inode(HOST_NS_PATH), inode(PEER_NS_PATH)].filter((x): x is number => x !== undefined).map((i) => `net:[${i}]`);
  const idList = [...ids];
  const spare = new Set<number>([process.pid, 1]);
  for (let p = process.ppid; p > 1 && !spare.has(p); ) {
    spare.add(p);
    p = parentOf(p) ?? 0;
  }
  const parent = new Map<number, number>();
  const seeds = new Map<number, string>();
  for (const d of safeReaddir('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const pid = Number(d);
    const ppid = parentOf(pid);
    if (ppid === undefined) continue; // gone, or a kernel thread
    parent.set(pid, ppid);
    if (spare.has(pid)) continue;
    const comm = readText(`/proc/${pid}/comm`)?.trim() ?? '?';
    const cmd = (readText(`/proc/${pid}/cmdline`) ?? '').replace(/\0/g, ' ').trim().slice(0, 120);
    const what = `${pid} ${comm}: ${cmd}`;
    if (mnt !== undefined && nsLink(pid, 'mnt') === `mnt:[${mnt}]`) seeds.set(pid, `${what} (lab mount ns)`);
    else if (nets.includes(nsLink(pid, 'net') ?? '')) seeds.set(pid, `${what} (lab netns)`);
    else if (OUR_COMMS.has(comm) && cmd.includes(`${LAB_DIR}/`)) seeds.set(pid, `${what} (names ${LAB_DIR})`);
    else if (idList.length) {
      const cg = readText(`/proc/${pid}/cgroup`) ?? '';
      if (idList.some((id) => cg.includes(id))) seeds.set(pid, `${what} (our container cgroup)`);
    }
  }
  // descendants
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of parent) {
      if (!seeds.has(pid) && !spare.has(pid) && seeds.has(ppid)) {
        const comm = readText(`/proc/${pid}/comm`)?.trim() ?? '?';
        seeds.set(pid, `${pid} ${comm} (child of ${ppid})`);
        grew = true;
      }
    }
  }
  return [...seeds].map(([pid, what]) => ({ pid, what }));
}

function parentOf(pid: number): number | undefined {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ppid = Number(after[1]);
  // kernel threads: children of kthreadd (2) or pid 2 itself
  if (pid === 2 || ppid === 2) return undefined;
  return ppid;
}

/**
 * Removes everything the lab made except (unless purge) storage, images and config: containers,
 * pods, our networks, leftover processes (by PID), mounts, the two netns (and with them every link,
 * the podman0 bridge and netavark's rules), empty cgroups our runs created, the runroot.
 */
export async function teardownLab(opts: TeardownOptions = {}): Promise<TeardownReport> {
  return withLock(() => teardownUnlocked(opts));
}

async function teardownUnlocked(opts: TeardownOptions): Promise<TeardownReport> {
  const start = performance.now();
  const report: TeardownReport = { killed: [], unmounted: [], removedNetns: [], removedCgroups: [], problems: [], ms: 0 };

  // 1. podman removes its containers (their netns, veths, cgroups) and our networks
  if (pinned() && existsSync(HOST_NS_PATH) && hasBin('podman')) {
    for (const args of [
      ['pod', 'rm', '--all', '--force', '--time', '0'],
      ['rm', '--all', '--force', '--time', '0'],
    ]) {
      const r = await podman(args, { timeoutMs: 60_000 }).catch((e: unknown) => ({ code: -1, stdout: '', stderr: String(e) }));
      if (r.code !== 0) report.problems.push(`podman ${args.join(' ')}: ${r.stderr.trim().split('\n')[0]}`);
    }
    for (const f of safeReaddir(NETWORK_DIR)) {
      if (!f.endsWith('.json')) continue;
      await podman(['network', 'rm', '--force', f.slice(0, -5)], { timeoutMs: 30_000 }).catch(() => undefined);
    }
  }
  const { netns: staleNetns, cgroupIds } = bundleFacts(ourContainerIds());
  for (const id of knownIds()) cgroupIds.add(id);

  // 2. leftover processes, by PID (after up to 1 s for conmon to finish on its own)
  for (let wait = 0; wait < 10 && labProcesses(cgroupIds).length; wait++) await sleep(100);
  for (let round = 0; round < 3; round++) {
    const procs = labProcesses(cgroupIds);
    if (!procs.length) break;
    for (const p of procs) {
      try {
        process.kill(p.pid, 'SIGKILL');
        report.killed.push(p.what);
      } catch {
        // already gone
      }
    }
    await sleep(200);
  }

  // 3. netns files of our containers that podman could not remove (a crashed run)
  for (const path of staleNetns) {
    if (!existsSync(path)) continue;
    await sh(bin('umount'), [path]);
    try {
      unlinkSync(path);
      report.removedNetns.push(path);
    } catch (e) {
      report.problems.push(`${path}: ${(e as Error).message}`);
    }
  }

  // 4. mounts: the pin, the private ns dir, anything else under LAB_DIR (deepest first)
  const under = mountPoints()
    .filter((m) => m === LAB_DIR || m.startsWith(`${LAB_DIR}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of under) {
    const r = await sh(bin('umount'), [m]);
    const r2 = r.code === 0 ? r : await sh(bin('umount'), ['-l', m]);
    if (r2.code === 0) report.unmounted.push(m);
    else report.problems.push(`umount ${m}: ${r2.stderr.trim()}`);
  }

  // 5. the two namespaces (links, podman0, netavark's nft/iptables rules go with them)
  for (const ns of [PEER_NS, HOST_NS]) {
    if (!existsSync(`/run/netns/${ns}`)) continue;
    const r = await sh(bin('ip'), ['netns', 'del', ns]);
    if (r.code === 0) report.removedNetns.push(ns);
    else report.problems.push(`ip netns del ${ns}: ${r.stderr.trim()}`);
  }

  // 6. cgroups our runs created, if empty; ids still holding one are remembered for next time
  const left = removeOurCgroups(cgroupIds, report);
  mkdirSync(STATE, { recursive: true });
  if (left.size) writeFileSync(IDS_FILE, `${JSON.stringify([...left])}\n`);
  else rmSync(IDS_FILE, { force: true });

  // 7. runtime state: podman detects "reboot" by a missing tmp_dir, and /run is on disk here
  rmSync(RUNROOT, { recursive: true, force: true });
  rmSync(TMP, { recursive: true, force: true });
  rmSync(READY, { force: true });
  rmSync(NETWORK_DIR, { recursive: true, force: true });
  if (opts.purge) {
    // storage may hold read-only overlay dirs: rm -rf copes; nothing is mounted any more
    const r = await sh(bin('rm'), ['-rf', '--one-file-system', LAB_DIR], 60_000);
    if (r.code !== 0) report.problems.push(`rm -rf ${LAB_DIR}: ${r.stderr.trim()}`);
  }
  report.ms = Math.round(performance.now() - start);
  return report;
}

/**
 * what of the lab is left on the machine: netns, links in the root netns, mounts, processes and the
 * libpod_parent cgroups our lab created (all empty after teardownLab)
 */
export async function leftovers(): Promise<string[]> {
  const left: string[] = [];
  for (const ns of safeReaddir('/run/netns')) {
    if (ns === HOST_NS || ns === PEER_NS) left.push(`netns ${ns}`);
  }
  const links = await sh(bin('ip'), ['-o', 'link', 'show']);
  for (const l of links.stdout.split('\n')) {
    const name = l.split(': ')[1]?.split('@')[0];
    if (name && (name.startsWith('nqt-pm') || name === 'podman0')) left.push(`link ${name} in the root netns`);
  }
  for (const m of mountPoints()) {
    if (m === LAB_DIR || m.startsWith(`${LAB_DIR}/`)) left.push(`mount ${m}`);
  }
  for (const p of labProcesses()) left.push(`process ${p.what}`);
  try {
    const mark = JSON.parse(readText(CGROUP_MARK) ?? '{}') as { mayRemove?: string[] };
    for (const c of mark.mayRemove ?? []) if (existsSync(c)) left.push(`cgroup ${c}`);
  } catch {
    // no mark: nothing of ours to report
  }
  return left;
}
