/**
 * OCI hook wall time: `node dist/netqos-hook.cjs` with an OCI state on stdin, timed from spawn
 * to exit, beside `node -e 0` (a bare Node start) spawned the same way, interleaved round by
 * round so both see the same machine. The hook's own work is its time minus Node's start; the
 * budget for it is 15 ms.
 *
 *   node bench/run.mjs bench/hook-timing.ts [--runs 30] [--warmup 3]
 *
 * Five kinds per round, in an order that rotates every round:
 *   node -e 0          the floor: Node start-up and exit
 *   createRuntime      a real first apply: the namespace is unshaped before every run (removed
 *                      with removeQos, not timed), the state's pid is a `sleep` inside it, so the
 *                      hook creates the ifb, the ingress redirect and two HTB trees
 *   poststop shaped    a named namespace (the bundle's config.json points at /run/netns/…),
 *                      shaped before every run (applyQos, not timed) and used by no process, so
 *                      the hook really removes everything (the expensive path: ifb unregistration)
 *   poststop gone      podman's usual case: the bundle's namespace path no longer exists
 *   ip link del        not the hook: a bare `ip -n NS link del` of an up ifb, the kernel's share of
 *                      a real removal (unregistering a device waits for RCU grace periods)
 *
 * Every run is checked outside the timed part: exit code 0, nothing on stderr, and the
 * namespace read back (one `tc -j qdisc show`) as shaped / unshaped as expected.
 * Results: a table on stdout and bench/results/hook-timing-<timestamp>.json.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { applyQos, removeQos } from '../src/engine.js';
import { parseAnnotations } from '../src/domain/annotations.js';
import { DEFAULT_CONFIG } from '../src/domain/config.js';
import { inNetns } from '../src/kernel/netns.js';
import { toolPath } from '../src/kernel/tools.js';
import { cleanupAll, makeNetns, nsPath, nsRef, pidAlive, registerPid, vethPair } from '../test/support/fixtures.js';
import { fixed, hex, loadText, machine, privateTempDir, repoRoot, requireRootUser, stats, table, writeResult, type Stats } from './common.js';

const BUDGET_MS = 15;
const ANNOTATIONS = { 'kubernetes.io/egress-bandwidth': '10M', 'kubernetes.io/ingress-bandwidth': '20M' };
/** a single timed child never runs longer than this (the hook's own deadline is 8 s) */
const CHILD_DEADLINE_MS = 20_000;
/** the `sleep` standing in for the container's process outlives any normal run, and no more */
const SLEEP_S = 1800;

type Kind = 'node' | 'create' | 'stopShaped' | 'stopGone' | 'ifbDel';
const KINDS: readonly Kind[] = ['node', 'create', 'stopShaped', 'stopGone', 'ifbDel'];
const LABEL: Record<Kind, string> = {
  node: 'node -e 0',
  create: 'createRuntime',
  stopShaped: 'poststop (shaped, netns present)',
  stopGone: 'poststop (netns gone)',
  ifbDel: 'bare `ip link del` of an up ifb',
};
/** kinds that are the hook (the others are references it is compared with) */
const isHook = (k: Kind): boolean => k !== 'node' && k !== 'ifbDel';

const ordinal = (n: number): string => {
  const suffix = n % 100 >= 11 && n % 100 <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${suffix}`;
};

function intArg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 0 || v > 1000) throw new Error(`--${name} wants an integer 0..1000`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// timing one child

interface Timed {
  ms: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Spawns a program (node by default), writes input to its stdin, and times spawn -> exit with hrtime. */
function timedNode(args: readonly string[], input: string, env: NodeJS.ProcessEnv, file: string = process.execPath): Promise<Timed> {
  return new Promise((resolvePromise, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let exitedAt: bigint | undefined;
    const t0 = process.hrtime.bigint();
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
    const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_DEADLINE_MS);
    child.on('exit', () => {
      exitedAt = process.hrtime.bigint();
    });
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdin.on('error', () => undefined);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({
        ms: Number((exitedAt ?? process.hrtime.bigint()) - t0) / 1e6,
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    child.stdin.end(input);
  });
}

// ---------------------------------------------------------------------------------------------
// reading a namespace back (one process)

interface TcQdisc {
  kind: string;
  handle: string;
  dev: string;
  root?: boolean;
}

type ShapeState = 'shaped' | 'unshaped' | 'partial';

async function shapeState(ns: string): Promise<{ state: ShapeState; detail: string }> {
  const r = await inNetns(nsRef(ns), 'tc', ['-j', 'qdisc', 'show'], { timeoutMs: 5000 });
  const q = JSON.parse(r.stdout || '[]') as TcQdisc[];
  const ifbs = [...new Set(q.map((x) => x.dev).filter((d) => /^nqi\d+$/.test(d)))];
  const eth0Htb = q.some((x) => x.dev === 'eth0' && x.root === true && x.kind === 'htb' && x.handle === '4e51:');
  const eth0Ingress = q.some((x) => x.dev === 'eth0' && (x.kind === 'ingress' || x.kind === 'clsact'));
  const ifbHtb = ifbs.length === 1 && q.some((x) => x.dev === ifbs[0] && x.kind === 'htb' && x.handle === '4e51:');
  const detail = q.map((x) => `${x.dev}:${x.kind}:${x.handle}`).join(' ');
  if (eth0Htb && eth0Ingress && ifbHtb) return { state: 'shaped', detail };
  if (!eth0Htb && !eth0Ingress && ifbs.length === 0 && !q.some((x) => x.handle === '4e51:')) return { state: 'unshaped', detail };
  return { state: 'partial', detail };
}

async function expectState(ns: string, want: ShapeState, when: string): Promise<void> {
  const s = await shapeState(ns);
  if (s.state !== want) throw new Error(`${when}: ${ns} is ${s.state}, expected ${want} (${s.detail})`);
}

// ---------------------------------------------------------------------------------------------
// the container's stand-in process

async function sleepIn(ns: string): Promise<number> {
  // nsenter without --fork execs sleep: the child's pid is the sleep's, inside the namespace
  const child = spawn(toolPath('nsenter'), [`--net=${nsPath(ns)}`, '/bin/sleep', String(SLEEP_S)], { stdio: 'ignore' });
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start sleep');
  child.on('error', () => undefined);
  child.unref();
  const want = `net:[${statSync(nsPath(ns)).ino}]`;
  for (let i = 0; i < 200; i++) {
    if (pidAlive(pid, 'sleep')) {
      let link = '';
      try {
        link = readlinkSync(`/proc/${pid}/ns/net`);
      } catch {
        // not readable yet
      }
      if (link === want) {
        registerPid(pid, 'sleep');
        return pid;
      }
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
  throw new Error(`sleep in ${ns} did not start within 2 s`);
}

// ---------------------------------------------------------------------------------------------

/** The .ts files the hook's bundle is made of: relative imports followed from src/hook/main.ts. */
function hookSources(entry: string): string[] {
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file) || !existsSync(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)\.js'/g)) {
      visit(resolve(dirname(file), `${m[1]}.ts`));
    }
  };
  visit(entry);
  return [...seen];
}

/** Refuses a missing or stale dist/netqos-hook.cjs: the numbers must be of the current source. */
function checkHookBuild(hook: string): number {
  if (!existsSync(hook)) throw new Error(`${hook} does not exist: build it with \`node packaging/build.mjs\``);
  const built = statSync(hook).mtimeMs;
  const sources = hookSources(join(repoRoot(), 'src', 'hook', 'main.ts'));
  if (sources.length < 5) throw new Error(`found only ${sources.length} source files behind src/hook/main.ts: cannot tell whether ${hook} is current`);
  const newer = sources.filter((p) => statSync(p).mtimeMs > built);
  if (newer.length > 0) {
    throw new Error(`${hook} is older than ${newer.slice(0, 3).join(', ')}${newer.length > 3 ? ', …' : ''}: rebuild with \`node packaging/build.mjs\``);
  }
  return sources.length;
}

function bundleDir(base: string, name: string, netnsPathForConfig: string): string {
  const dir = join(base, name);
  mkdirSync(dir, { recursive: true });
  const config = {
    ociVersion: '1.0.2-dev',
    process: { args: ['true'] },
    root: { path: 'rootfs' },
    linux: { namespaces: [{ type: 'pid' }, { type: 'network', path: netnsPathForConfig }, { type: 'mount' }] },
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

async function main(): Promise<void> {
  requireRootUser();
  const runs = intArg('runs', 30);
  const warmup = intArg('warmup', 3);
  if (runs < 1) throw new Error('--runs must be at least 1');
  const hook = resolve(repoRoot(), process.env.NETQOS_HOOK ?? 'dist/netqos-hook.cjs');
  const sourceCount = checkHookBuild(hook);
  const hookSha = createHash('sha256').update(readFileSync(hook)).digest('hex').slice(0, 16);
  const tmp = privateTempDir('hook');
  const mach = machine();
  process.stdout.write(`hook timing: ${hook} (sha256 ${hookSha}…, built ${new Date(statSync(hook).mtimeMs).toISOString()}, newer than its ${sourceCount} source files)\n${runs} runs of each kind after ${warmup} warm-up rounds, interleaved\n`);
  process.stdout.write(`load average at start: ${loadText(mach.loadStart)} (${mach.cpus} CPUs)\n`);
  // The loader's V8 code cache holds what the run that wrote it compiled: an installed hook's
  // comes from install.sh's warm-up (a createRuntime and a poststop); a missing one here is
  // written by this bench's first createRuntime, one found here by whatever ran first.
  const cacheFile = join(dirname(hook), 'netqos-hook-main.cjs.v8cache');
  const cacheBytes = (): number | undefined => (existsSync(cacheFile) ? statSync(cacheFile).size : undefined);
  const cacheAtStart = cacheBytes();
  process.stdout.write(
    `code cache: ${cacheAtStart === undefined ? 'none yet (the first createRuntime writes it)' : `${cacheAtStart} bytes, as found`} (${cacheFile})\n`,
  );

  const logFile = join(tmp, 'hook.log');
  const configFile = join(tmp, 'config.json');
  writeFileSync(configFile, JSON.stringify({ log: { file: logFile } }));
  // a runtime gives a hook little environment (podman: none at poststop, so the hook never
  // relies on PATH): only our config, for node -e 0 too
  const env: NodeJS.ProcessEnv = { NETQOS_CONFIG: configFile };
  const spec = parseAnnotations(ANNOTATIONS);
  if (!spec) throw new Error('annotations parse to no shaping');
  const engineOpts = { defaultLatencyUs: DEFAULT_CONFIG.queueLatencyUs, timeoutMs: DEFAULT_CONFIG.hookTimeoutMs };

  // createRuntime's container: a namespace with a veth to a peer and a process inside
  const createNs = await makeNetns('hb');
  await vethPair(createNs, await makeNetns('hb-peer'));
  const sleepPid = await sleepIn(createNs);
  const createBundle = bundleDir(tmp, 'bundle-create', nsPath(createNs));
  // poststop's container: a named namespace nobody lives in
  const stopNs = await makeNetns('hbs');
  await vethPair(stopNs, await makeNetns('hbs-peer'));
  const stopBundle = bundleDir(tmp, 'bundle-stop', nsPath(stopNs));
  // podman's poststop: the namespace was deleted with the container's network
  const goneNsPath = nsPath(`nqt-hb-gone-${hex(4)}`);
  if (existsSync(goneNsPath)) throw new Error(`${goneNsPath} exists`);
  const goneBundle = bundleDir(tmp, 'bundle-gone', goneNsPath);
  // the kernel's share of a real removal: deleting an up ifb (device unregistration waits for
  // RCU grace periods), timed as the bare iproute2 command in a namespace of its own
  const ifbNs = await makeNetns('hbi');
  await expectState(createNs, 'unshaped', 'setup');
  await expectState(stopNs, 'unshaped', 'setup');

  const samples: Record<Kind, number[]> = { node: [], create: [], stopShaped: [], stopGone: [], ifbDel: [] };
  const warm: Record<Kind, number[]> = { node: [], create: [], stopShaped: [], stopGone: [], ifbDel: [] };
  const ids = new Map<string, { kind: Kind; round: number }>();

  const runOne = async (kind: Kind, round: number): Promise<number> => {
    const id = hex(32);
    ids.set(id.slice(0, 12), { kind, round });
    let input = '';
    if (kind === 'create') {
      await expectState(createNs, 'unshaped', `round ${round} before createRuntime`);
      if (!pidAlive(sleepPid, 'sleep')) throw new Error('the sleep inside the createRuntime namespace is gone');
      input = JSON.stringify({ ociVersion: '1.0', id, pid: sleepPid, bundle: createBundle, status: 'created', annotations: ANNOTATIONS });
    } else if (kind === 'stopShaped') {
      await applyQos(nsRef(stopNs), spec, engineOpts);
      await expectState(stopNs, 'shaped', `round ${round} before poststop`);
      input = JSON.stringify({ ociVersion: '1.0.2-dev', id, status: 'stopped', bundle: stopBundle, annotations: ANNOTATIONS });
    } else if (kind === 'stopGone') {
      input = JSON.stringify({ ociVersion: '1.0.2-dev', id, status: 'stopped', bundle: goneBundle, annotations: ANNOTATIONS });
    }
    if (kind === 'ifbDel') {
      await inNetns(nsRef(ifbNs), 'ip', ['-batch', '-'], { input: 'link add nqt-ifb type ifb\nlink set dev nqt-ifb up\n' });
      const t = await timedNode(['-n', ifbNs, 'link', 'del', 'dev', 'nqt-ifb'], '', {}, toolPath('ip'));
      if (t.code !== 0) throw new Error(`round ${round} ${LABEL[kind]}: exit ${t.code ?? t.signal}: ${t.stderr.trim()}`);
      return t.ms;
    }
    const args = kind === 'node' ? ['-e', '0'] : [hook];
    const t = await timedNode(args, input, env);
    const what = `round ${round} ${LABEL[kind]}`;
    if (t.code !== 0) throw new Error(`${what}: exit ${t.code ?? t.signal}: ${t.stderr.trim()}`);
    if (t.stderr.trim() || t.stdout.trim()) throw new Error(`${what}: unexpected output: ${(t.stderr + t.stdout).trim()}`);
    if (kind === 'create') {
      await expectState(createNs, 'shaped', `${what} after`);
      const r = await removeQos(nsRef(createNs), engineOpts); // untimed: the next run starts unshaped
      if (r.removed === 0) throw new Error(`${what}: removeQos found nothing to remove`);
    } else if (kind === 'stopShaped') {
      await expectState(stopNs, 'unshaped', `${what} after`);
    } else if (kind === 'stopGone') {
      if (existsSync(goneNsPath)) throw new Error(`${what}: ${goneNsPath} appeared`);
    }
    return t.ms;
  };

  for (let round = 0; round < warmup + runs; round++) {
    const order = KINDS.map((_, i) => KINDS[(i + round) % KINDS.length]!);
    for (const kind of order) {
      const ms = await runOne(kind, round);
      (round < warmup ? warm : samples)[kind].push(ms);
    }
    if (round === warmup - 1) process.stdout.write('warm-up done\n');
  }
  if (warmup === 0) process.stdout.write('(no warm-up)\n');
  mach.loadEnd = loadavg();
  const hookShaEnd = createHash('sha256').update(readFileSync(hook)).digest('hex').slice(0, 16);
  if (hookShaEnd !== hookSha) throw new Error(`${hook} changed during the run (rebuilt meanwhile): the samples mix two builds; run again`);

  // the hook logs how long applyQos took inside it ("shaped", ms): the rest is Node and loading
  const applyMs: number[] = [];
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const rec = JSON.parse(line) as { id?: string; msg?: string; ms?: number };
      const who = rec.id ? ids.get(rec.id) : undefined;
      if (who && who.kind === 'create' && who.round >= warmup && rec.msg === 'shaped' && typeof rec.ms === 'number') applyMs.push(rec.ms);
    } catch {
      // not a record of ours
    }
  }

  const st = Object.fromEntries(KINDS.map((k) => [k, stats(samples[k])])) as Record<Kind, Stats>;
  const node = st.node;
  const rows = KINDS.map((k) => {
    const s = st[k];
    const own = !isHook(k) ? '' : `${fixed(s.median - node.median)} / ${fixed(s.p95 - node.p95)}`;
    const verdict = !isHook(k) ? '' : s.median - node.median <= BUDGET_MS ? 'within' : 'OVER';
    return [LABEL[k], fixed(s.median), fixed(s.p95), fixed(s.min), own, verdict];
  });
  process.stdout.write('\n');
  process.stdout.write(
    `${table(['wall time, ms (spawn to exit)', 'median', 'p95', 'min', 'own work median / p95', `budget ${BUDGET_MS} ms`], rows)}\n`,
  );
  process.stdout.write(`\nown work = hook - node -e 0 (median - median, p95 - p95); ${runs} runs each, p95 = ${ordinal(Math.ceil(0.95 * runs))} smallest\n`);
  if (applyMs.length > 0) {
    const a = stats(applyMs);
    process.stdout.write(`applyQos inside createRuntime (the hook's own log, "shaped" ms): median ${fixed(a.median)}, p95 ${fixed(a.p95)}\n`);
  }
  const ifb = st.ifbDel;
  const stopOwn = st.stopShaped.median - node.median;
  process.stdout.write(
    `poststop with a real removal, own work without the kernel's ifb deletion (own median - bare ip link del median): ${fixed(stopOwn - ifb.median)} ms (${fixed(stopOwn - ifb.median <= BUDGET_MS ? 0 : stopOwn - ifb.median - BUDGET_MS)} ms over the budget)\n`,
  );
  process.stdout.write(`load average at end: ${loadText(mach.loadEnd)} (start ${loadText(mach.loadStart)})\n`);

  const file = writeResult('hook-timing', {
    kind: 'hook-timing',
    date: new Date().toISOString(),
    hook: { path: hook, sha256prefix: hookSha, mtime: new Date(statSync(hook).mtimeMs).toISOString(), bytes: statSync(hook).size },
    codeCache: { path: cacheFile, bytesAtStart: cacheAtStart, bytesAtEnd: cacheBytes() },
    machine: { ...mach, loadEnd: mach.loadEnd.map((x) => Math.round(x * 100) / 100) },
    method: {
      runs,
      warmup,
      timing: 'process.hrtime from spawn() to the child\'s exit event; stdin = the OCI state, stdout/stderr piped',
      env: Object.keys(env),
      annotations: ANNOTATIONS,
      p95: 'nearest rank',
      budgetMs: BUDGET_MS,
    },
    summary: Object.fromEntries(
      KINDS.map((k) => [
        k,
        { label: LABEL[k], ...st[k], ...(!isHook(k) ? {} : { ownMedian: st[k].median - node.median, ownP95: st[k].p95 - node.p95 }) },
      ]),
    ),
    applyMsInHook: applyMs.length > 0 ? stats(applyMs) : undefined,
    samples,
    warmup: warm,
  });
  process.stdout.write(`results: ${file}\n`);
}

let failed = false;
try {
  await main();
} catch (e) {
  failed = true;
  process.stderr.write(`hook-timing: ${(e as Error).stack ?? String(e)}\n`);
} finally {
  try {
    await cleanupAll();
  } catch (e) {
    failed = true;
    process.stderr.write(`hook-timing: cleanup: ${(e as Error).message}\n`);
  }
}
process.exitCode = failed ? 1 : 0;
