/**
 * What `netqos doctor` found, as a list of checks, each with what to do when it fails, rendered
 * as a table or JSON. Pure: doctor.ts gathers the facts.
 */
import type { Config } from '../domain/config.js';
import { formatMicros } from '../domain/duration.js';
import { formatTable } from './table.js';

export type Area = 'kernel' | 'tool' | 'node' | 'runtime' | 'hooks.d' | 'config';

export interface Check {
  area: Area;
  name: string;
  ok: boolean;
  /** a failed required check makes doctor exit 1 */
  required: boolean;
  /** ok, missing, not found, invalid, ... */
  state: string;
  /** what was found, or what it is for */
  detail: string;
  /** what to do, when not ok */
  fix?: string;
}

export interface DoctorReport {
  /** every required check passed */
  ok: boolean;
  checks: Check[];
}

export const report = (checks: Check[]): DoctorReport => ({ ok: checks.every((c) => c.ok || !c.required), checks });

/** what each probed kernel feature is for, and the kernel option that provides it */
const FEATURES: Readonly<Record<string, { use: string; config: string }>> = {
  htb: { use: 'shapes each direction', config: 'CONFIG_NET_SCH_HTB (sch_htb)' },
  bfifo: { use: 'leaf queues bounded by time', config: 'CONFIG_NET_SCH_FIFO' },
  ingress: { use: 'hook that redirects ingress to the ifb', config: 'CONFIG_NET_SCH_INGRESS (sch_ingress)' },
  u32: { use: 'match-all redirect filter', config: 'CONFIG_NET_CLS_U32 (cls_u32)' },
  mirred: { use: 'redirect action into the ifb', config: 'CONFIG_NET_ACT_MIRRED (act_mirred)' },
  ifb: { use: 'device ingress is shaped on', config: 'CONFIG_IFB (ifb)' },
  fq_codel: { use: 'fair, delay-bounded leaves; without it leaves are bfifo sized by the queue latency', config: 'CONFIG_NET_SCH_FQ_CODEL (sch_fq_codel)' },
  clsact: { use: 'lets netqos share a clsact hook someone else installed', config: 'CONFIG_NET_SCH_INGRESS (sch_ingress)' },
  tbf: { use: 'not used by the current policy', config: 'CONFIG_NET_SCH_TBF (sch_tbf)' },
  pfifo: { use: 'not used by the current policy', config: 'CONFIG_NET_SCH_FIFO' },
};

/** probed features (or why the probe failed) -> one check each, required ones first */
export function kernelChecks(required: readonly string[], probed: Readonly<Record<string, boolean>> | { error: string }): Check[] {
  if ('error' in probed && typeof probed.error === 'string') {
    return required.map((name) => ({
      area: 'kernel' as const,
      name,
      ok: false,
      required: true,
      state: 'unknown',
      detail: `the probe failed: ${probed.error}`,
      fix: 'install util-linux (unshare) and iproute2, and run netqos doctor as root',
    }));
  }
  const features = probed as Readonly<Record<string, boolean>>;
  const names = [...required, ...Object.keys(features).filter((n) => !required.includes(n))];
  return names.map((name) => {
    const ok = features[name] === true;
    const info = FEATURES[name];
    const isRequired = required.includes(name);
    const check: Check = {
      area: 'kernel',
      name,
      ok,
      required: isRequired,
      state: ok ? 'present' : 'missing',
      detail: `${isRequired ? 'required' : 'optional'}: ${info?.use ?? 'probed'}`,
    };
    if (!ok) check.fix = `enable ${info?.config ?? `the kernel's ${name} support`}`;
    return check;
  });
}

export interface ToolFound {
  name: string;
  path?: string;
  required: boolean;
  /** what the tool is for */
  use: string;
  /** the Debian package that has it */
  pkg: string;
}

export function toolChecks(tools: readonly ToolFound[]): Check[] {
  return tools.map((t) => ({
    area: 'tool' as const,
    name: t.name,
    ok: t.path !== undefined,
    required: t.required,
    state: t.path !== undefined ? 'found' : 'not found',
    detail: t.path !== undefined ? `${t.path} (${t.use})` : t.use,
    ...(t.path === undefined ? { fix: `install the Debian package ${t.pkg}` } : {}),
  }));
}

/** `version` (process.versions.node) against the oldest supported [major, minor] */
export function nodeCheck(version: string, min: readonly [number, number]): Check {
  const [major = 0, minor = 0] = version.replace(/^v/, '').split('.').map(Number);
  const ok = major > min[0] || (major === min[0] && minor >= min[1]);
  const least = `${min[0]}.${min[1]}`;
  return {
    area: 'node',
    name: 'node',
    ok,
    required: true,
    state: ok ? 'ok' : 'too old',
    detail: `v${version.replace(/^v/, '')} (netqos needs >= ${least})`,
    ...(ok ? {} : { fix: `install Node.js ${least} or later` }),
  };
}

export interface RuntimeFound {
  name: string;
  path?: string;
  /** first line of `<runtime> --version` */
  version?: string;
}

export function runtimeChecks(runtimes: readonly RuntimeFound[]): Check[] {
  return runtimes.map((r) => ({
    area: 'runtime' as const,
    name: r.name,
    ok: r.path !== undefined,
    required: false,
    state: r.path !== undefined ? 'found' : 'not found',
    detail: r.path === undefined ? '-' : [r.path, r.version].filter(Boolean).join(': '),
  }));
}

export interface HookFile {
  path: string;
  /** the hook program and the script it runs, from the file */
  command?: string;
  /** why the file is unusable (bad JSON, a missing program or script) */
  problem?: string;
}

export function hookCheck(name: string, dirs: readonly string[], found: readonly HookFile[]): Check {
  const base = { area: 'hooks.d' as const, name, required: false };
  const file = found[0];
  if (!file) {
    return {
      ...base,
      ok: false,
      state: 'not installed',
      detail: `not in ${dirs.join(' or ')}: podman and CRI-O will not call netqos`,
      fix: `install hooks/${name} as ${dirs[0]}/${name}`,
    };
  }
  if (file.problem) return { ...base, ok: false, state: 'broken', detail: `${file.path}: ${file.problem}`, fix: `fix or reinstall ${file.path}` };
  const also = found.length > 1 ? `; also ${found.slice(1).map((f) => f.path).join(', ')}` : '';
  return { ...base, ok: true, state: 'installed', detail: `${file.path}${file.command ? ` runs ${file.command}` : ''}${also}` };
}

export type ConfigFound = { path: string; state: 'absent' } | { path: string; state: 'valid'; config: Config } | { path: string; state: 'invalid'; error: string };

export function configCheck(c: ConfigFound): Check {
  const base = { area: 'config' as const, name: c.path, required: true };
  if (c.state === 'absent') return { ...base, ok: true, state: 'absent', detail: 'no file: the defaults apply' };
  if (c.state === 'invalid') {
    return { ...base, ok: false, state: 'invalid', detail: c.error, fix: `fix ${c.path} (the hook uses the defaults until then)` };
  }
  const k = c.config;
  const detail = `valid: onError ${k.onError}, queueLatency ${formatMicros(k.queueLatencyUs)}, hookTimeoutMs ${k.hookTimeoutMs}, log ${k.log.file} (${k.log.level})${k.vethShaping === 'host' ? ', vethShaping host (veths shaped on the node)' : ''}`;
  return { ...base, ok: true, state: 'valid', detail };
}

export function renderDoctorTable(r: DoctorReport): string {
  const rows = r.checks.map((c) => [c.area, c.name, c.state, c.fix ? `${c.detail}; ${c.fix}` : c.detail]);
  const failed = r.checks.filter((c) => !c.ok && c.required);
  const verdict = r.ok
    ? 'netqos doctor: everything netqos needs is here'
    : `netqos doctor: ${failed.length} required part${failed.length === 1 ? '' : 's'} missing or broken: ${failed.map((c) => `${c.area} ${c.name}`).join(', ')}`;
  return `${formatTable(['AREA', 'CHECK', 'STATE', 'DETAIL'], rows)}${verdict}\n`;
}

export const renderDoctorJson = (r: DoctorReport): string => `${JSON.stringify(r, null, 2)}\n`;
