/**
 * Setup cost. (1) One target at a time: netqos applyQos / removeQos (both directions, 10M, as the
 * hook calls them) against the CNI plugin's ADD / DEL (both directions, containerd's burst),
 * interleaved round by round. (2) N targets at once: N namespaces, each with a veth whose host
 * end is in a node namespace of ours; netqos applies all N concurrently from one process (as a
 * node daemon such as the NRI plugin would), then removes them all; the CNI plugin gets N
 * concurrent ADDs and DELs, forked by one bash in the node namespace (as containerd forks them).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseAnnotations } from '../../src/domain/annotations.js';
import { DEFAULT_CONFIG } from '../../src/domain/config.js';
import { applyQos, observe, removeQos } from '../../src/engine.js';
import { isEmptyPlan, planRemove } from '../../src/plan/remove-plan.js';
import { ipBatch, ipIn, makeNetns, nsPath, nsRef, registerFile } from '../../test/support/fixtures.js';
import { bandwidthFor, cniEnv, cniError, netConf, timingScript, type CniBandwidth, type CniTarget } from './cni.js';
import { runTracked } from './proc.js';
import { summarize, type Summary } from './stats.js';

const hookOptions = { defaultLatencyUs: DEFAULT_CONFIG.queueLatencyUs, timeoutMs: DEFAULT_CONFIG.hookTimeoutMs };
const BOTH = { 'kubernetes.io/ingress-bandwidth': '10M', 'kubernetes.io/egress-bandwidth': '10M' };

function bothBandwidth(): CniBandwidth {
  const i = bandwidthFor('ingress', 10e6, 'containerd');
  const e = bandwidthFor('egress', 10e6, 'containerd');
  return { ...i, EgressRate: e.EgressRate, EgressBurst: e.EgressBurst };
}

interface Target {
  ns: string;
  hostIf: string;
  cni: CniTarget;
}

let targetCounter = 0;
let scriptCounter = 0;

/** n container namespaces, each with eth0 (up) whose veth peer t<k> is in node. */
async function makeTargets(node: string, n: number, tmp: string): Promise<Target[]> {
  const out: Target[] = [];
  const lines: string[] = [];
  for (let k = 0; k < n; k++) {
    const ns = await makeNetns('b-t');
    const id = ++targetCounter;
    const hostIf = `t${id}`;
    lines.push(`link add ${hostIf} type veth peer name eth0 netns ${ns}`, `link set ${hostIf} up`);
    const cni: CniTarget = { containerNs: ns, ifname: 'eth0', hostIf, containerId: id.toString(16).padStart(64, 'c'), containerIpCidr: '198.18.200.2/24' };
    out.push({ ns, hostIf, cni });
  }
  await ipBatch(node, lines);
  await pool(out, 16, (t) => ipIn(t.ns, ['link', 'set', 'eth0', 'up']));
  for (const t of out) {
    const f = join(tmp, `conf-${t.hostIf}.json`);
    writeFileSync(f, netConf(t.cni, bothBandwidth()));
    registerFile(f);
  }
  return out;
}

async function pool<T, R>(items: readonly T[], width: number, f: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await f(items[i]!);
      }
    }),
  );
  return out;
}

/** Runs a timing script in the node namespace; returns label -> {code, ms}. */
async function bashTimes(node: string, script: string, timeoutMs: number, tmp: string): Promise<Map<string, { code: number; ms: number }>> {
  // a file, not bash -c: 500 targets' script is larger than the kernel takes as one argument
  const file = join(tmp, `timing-${++scriptCounter}.sh`);
  writeFileSync(file, script);
  registerFile(file);
  const r = await runTracked('/usr/bin/nsenter', [`--net=${nsPath(node)}`, '/bin/bash', file], {
    timeoutMs,
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    comm: 'bash',
  });
  if (r.code !== 0) throw new Error(`timing script failed (exit ${r.code}): ${r.stderr.trim().split('\n')[0]}`);
  const out = new Map<string, { code: number; ms: number }>();
  for (const line of r.stdout.trim().split('\n')) {
    const m = /^(\S+) (\d+) (\d+)$/.exec(line.trim());
    if (m) out.set(m[1]!, { code: Number(m[2]), ms: Number(m[3]) / 1000 });
  }
  return out;
}

export interface PerTargetCost {
  runs: number;
  netqosApplyMs: Summary;
  netqosRemoveMs: Summary;
  cniAddMs: Summary;
  cniDelMs: Summary;
  raw: { netqosApply: number[]; netqosRemove: number[]; cniAdd: number[]; cniDel: number[] };
  failures: string[];
}

export async function perTargetCost(runs: number, tmp: string): Promise<PerTargetCost> {
  const node = await makeNetns('b-cnode');
  const [nq, cn] = await makeTargets(node, 2, tmp);
  const spec = parseAnnotations(BOTH)!;
  const raw = { netqosApply: [] as number[], netqosRemove: [] as number[], cniAdd: [] as number[], cniDel: [] as number[] };
  const failures: string[] = [];
  const env = (cmd: 'ADD' | 'DEL'): Record<string, string> => cniEnv(cmd, cn!.cni);
  const conf = join(tmp, `conf-${cn!.hostIf}.json`);
  const cniRound = async (): Promise<void> => {
    const script = timingScript(
      [
        { label: 'add', command: 'ADD', env: env('ADD'), confFile: conf },
        { label: 'del', command: 'DEL', env: env('DEL'), confFile: conf },
      ],
      // DEL leaves the host veth's qdiscs to the veth's deletion: clear them for the next ADD
      [`tc qdisc del dev ${cn!.hostIf} root 2>/dev/null`, `tc qdisc del dev ${cn!.hostIf} ingress 2>/dev/null`, 'true'],
    );
    const t = await bashTimes(node, script, 30_000, tmp);
    const add = t.get('add');
    const del = t.get('del');
    if (!add || add.code !== 0 || !del || del.code !== 0) failures.push(`CNI round: add ${add?.code} del ${del?.code}`);
    else {
      raw.cniAdd.push(add.ms);
      raw.cniDel.push(del.ms);
    }
  };
  const netqosRound = async (): Promise<void> => {
    try {
      const t0 = performance.now();
      await applyQos(nsRef(nq!.ns), spec, hookOptions);
      const t1 = performance.now();
      await removeQos(nsRef(nq!.ns), hookOptions);
      const t2 = performance.now();
      raw.netqosApply.push(t1 - t0);
      raw.netqosRemove.push(t2 - t1);
    } catch (e) {
      failures.push(`netqos round: ${(e as Error).message}`);
    }
  };
  // one warm-up round each (page cache, the engine's capability probe), not counted
  await netqosRound();
  await cniRound();
  for (const k of Object.keys(raw) as (keyof typeof raw)[]) raw[k].length = 0;
  failures.length = 0;
  for (let i = 0; i < runs; i++) {
    if (i % 2 === 0) {
      await netqosRound();
      await cniRound();
    } else {
      await cniRound();
      await netqosRound();
    }
  }
  const sum = (x: number[]): Summary => (x.length > 0 ? summarize(x) : summarize([NaN]));
  return {
    runs,
    netqosApplyMs: sum(raw.netqosApply),
    netqosRemoveMs: sum(raw.netqosRemove),
    cniAddMs: sum(raw.cniAdd),
    cniDelMs: sum(raw.cniDel),
    raw,
    failures,
  };
}

export interface ScaleResult {
  system: 'netqos' | 'cni-containerd';
  n: number;
  applyTotalMs: number;
  applyPerTarget: Summary | null;
  applyFailures: number;
  removeTotalMs: number;
  removePerTarget: Summary | null;
  removeFailures: number;
  /** targets with something of the system's left after removal */
  leftovers: number;
  firstErrors: string[];
  note?: string;
}

async function netqosScale(targets: Target[]): Promise<ScaleResult> {
  const spec = parseAnnotations(BOTH)!;
  const errors: string[] = [];
  const timed = async (f: () => Promise<unknown>): Promise<number | undefined> => {
    const t0 = performance.now();
    try {
      await f();
      return performance.now() - t0;
    } catch (e) {
      if (errors.length < 5) errors.push((e as Error).message);
      return undefined;
    }
  };
  const a0 = performance.now();
  const applied = await Promise.all(targets.map((t) => timed(() => applyQos(nsRef(t.ns), spec, hookOptions))));
  const applyTotalMs = performance.now() - a0;
  const r0 = performance.now();
  const removed = await Promise.all(targets.map((t) => timed(() => removeQos(nsRef(t.ns), hookOptions))));
  const removeTotalMs = performance.now() - r0;
  const left = await pool(targets, 16, async (t) => {
    try {
      return isEmptyPlan(planRemove(await observe(nsRef(t.ns), hookOptions))) ? 0 : 1;
    } catch (e) {
      if (errors.length < 5) errors.push(`leftover check: ${(e as Error).message}`);
      return 1;
    }
  });
  const ok = (x: (number | undefined)[]): number[] => x.filter((v): v is number => v !== undefined);
  return {
    system: 'netqos',
    n: targets.length,
    applyTotalMs,
    applyPerTarget: ok(applied).length ? summarize(ok(applied)) : null,
    applyFailures: applied.filter((v) => v === undefined).length,
    removeTotalMs,
    removePerTarget: ok(removed).length ? summarize(ok(removed)) : null,
    removeFailures: removed.filter((v) => v === undefined).length,
    leftovers: left.reduce((a: number, b) => a + b, 0),
    firstErrors: errors,
  };
}

async function cniScale(node: string, targets: Target[], tmp: string): Promise<ScaleResult> {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const script = (cmd: 'ADD' | 'DEL'): string => {
    const lines = ['a0=${EPOCHREALTIME/./}'];
    for (const t of targets) {
      const env = Object.entries(cniEnv(cmd, t.cni))
        .map(([k, v]) => `${k}=${q(v)}`)
        .join(' ');
      const conf = join(tmp, `conf-${t.hostIf}.json`);
      const res = join(tmp, `res-${cmd}-${t.hostIf}.json`);
      lines.push(`( s=\${EPOCHREALTIME/./}; ${env} /usr/lib/cni/bandwidth < ${q(conf)} > ${q(res)} 2>&1; rc=$?; e=\${EPOCHREALTIME/./}; echo ${t.hostIf} $rc $((e - s)) ) &`);
    }
    lines.push('wait', 'a1=${EPOCHREALTIME/./}', 'echo total 0 $((a1 - a0))');
    return `${lines.join('\n')}\n`;
  };
  const errors: string[] = [];
  const parse = (cmd: 'ADD' | 'DEL', m: Map<string, { code: number; ms: number }>): { ok: number[]; failed: number; total: number } => {
    const ok: number[] = [];
    let failed = 0;
    for (const t of targets) {
      const res = join(tmp, `res-${cmd}-${t.hostIf}.json`);
      registerFile(res);
      const v = m.get(t.hostIf);
      if (v && v.code === 0) ok.push(v.ms);
      else {
        failed++;
        if (errors.length < 3) {
          let text = '';
          try {
            text = readFileSync(res, 'utf8');
          } catch {
            // no output file
          }
          errors.push(`${cmd} ${t.hostIf} (exit ${v?.code ?? 'none'}): ${cniError({ code: v?.code ?? -1, stdout: text, stderr: text, ms: 0 })}`);
        }
      }
    }
    return { ok, failed, total: m.get('total')?.ms ?? NaN };
  };
  const add = parse('ADD', await bashTimes(node, script('ADD'), 300_000, tmp));
  const del = parse('DEL', await bashTimes(node, script('DEL'), 300_000, tmp));
  const links = JSON.parse((await ipIn(node, ['-j', 'link', 'show'])).stdout) as { ifname: string }[];
  const ifbsLeft = links.filter((l) => l.ifname.startsWith('bwp')).length;
  // the host veths keep their TBF and ingress qdisc until the runtime deletes the veth: not counted
  return {
    system: 'cni-containerd',
    n: targets.length,
    applyTotalMs: add.total,
    applyPerTarget: add.ok.length ? summarize(add.ok) : null,
    applyFailures: add.failed,
    removeTotalMs: del.total,
    removePerTarget: del.ok.length ? summarize(del.ok) : null,
    removeFailures: del.failed,
    leftovers: ifbsLeft,
    firstErrors: errors,
    note: 'leftovers = ifbs left in the node namespace; DEL leaves the host veth TBF + ingress qdisc to the veth deletion',
  };
}

export async function scale(ns: readonly number[], tmp: string, log: (s: string) => void): Promise<ScaleResult[]> {
  const out: ScaleResult[] = [];
  for (const n of ns) {
    const node = await makeNetns('b-snode');
    const t0 = performance.now();
    const targets = await makeTargets(node, n, tmp);
    log(`  scale N=${n}: ${n} namespaces ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    // netqos on every target; the CNI plugin on the same veths afterwards (it shapes their host ends)
    const r1 = await netqosScale(targets);
    out.push(r1);
    log(`  scale N=${n} netqos: apply ${r1.applyTotalMs.toFixed(0)} ms total, ${r1.applyFailures} failed, ${r1.leftovers} left over`);
    const r2 = await cniScale(node, targets, tmp);
    out.push(r2);
    log(`  scale N=${n} CNI: ADD ${r2.applyTotalMs.toFixed(0)} ms total, ${r2.applyFailures} failed, ${r2.leftovers} ifbs left`);
    await deleteTargets(node, targets);
  }
  return out;
}

/**
 * Deletes these namespaces now (one `ip -force -batch`): 500 idle namespaces would otherwise
 * stay until the end of the run. cleanupAll skips them later (they are no longer listed).
 */
async function deleteTargets(node: string, targets: Target[]): Promise<void> {
  const names = [node, ...targets.map((t) => t.ns)];
  if (names.some((n) => !n.startsWith('nqt-b'))) throw new Error('deleteTargets: not ours');
  const r = await runTracked('/usr/sbin/ip', ['-force', '-batch', '-'], { input: names.map((n) => `netns del ${n}\n`).join(''), timeoutMs: 120_000, comm: 'ip' });
  if (r.code !== 0) throw new Error(`deleting the scale namespaces: ${r.stderr.trim().split('\n')[0]}`);
}
