/**
 * /etc/netqos/config.json: the operator's choices, validated with zod. Pure: the file is read
 * by src/config-file.ts. Every field is optional ({} gives DEFAULT_CONFIG) and unknown fields
 * are errors, so a misspelt field never silently does nothing.
 */
import {
  _default,
  enum as oneOf,
  gte,
  int,
  lte,
  NEVER,
  pipe,
  refine,
  strictObject,
  string,
  transform,
} from 'zod/mini';
import type { core } from 'zod/mini';
import { readQueueLatency } from './annotations.js';
import { NetqosError } from './errors.js';

export const CONFIG_PATH = '/etc/netqos/config.json';

export type OnError = 'fail' | 'warn';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
/** where an SR-IOV VF's egress limit is enforced (docs/sriov-ipvlan.md) */
export type VfEgress = 'software' | 'hardware' | 'both';
/** where a veth's shaping lives: in the container's namespace, or on its host peer (docs/host-side.md) */
export type VethShaping = 'container' | 'host';

export interface Config {
  /** bad annotations: "fail" the container's creation, or "warn" and start it unshaped */
  onError: OnError;
  log: { file: string; level: LogLevel };
  /** default leaf-queue latency (config field "queueLatency", a duration such as "5ms") */
  queueLatencyUs: number;
  /** the OCI hook's overall deadline, milliseconds */
  hookTimeoutMs: number;
  /** SR-IOV VF egress: HTB on the VF ("software"), the PF's max_tx_rate ("hardware"), or both */
  vfEgress: VfEgress;
  /** where the VF rates netqos replaced are remembered until it restores them */
  sriovStateDir: string;
  /**
   * "container" (default): every device is shaped inside the container's namespace. "host": a
   * veth whose peer is in the node's namespace is shaped on that peer (an ifb on the node for the
   * container's egress), out of reach of a privileged container. Other devices stay in the container.
   */
  vethShaping: VethShaping;
}

/** What an absent file or an empty object means. Frozen: it is shared by every caller. */
export const DEFAULT_CONFIG: Readonly<Config> = Object.freeze({
  onError: 'fail',
  log: Object.freeze({ file: '/var/log/netqos/netqos.log', level: 'info' }),
  queueLatencyUs: 5000,
  hookTimeoutMs: 8000,
  vfEgress: 'software',
  sriovStateDir: '/run/netqos/sriov',
  vethShaping: 'container',
} as const);

const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
/** the fields of the file, in the order the messages list them */
export const CONFIG_FIELDS = ['onError', 'log', 'queueLatency', 'hookTimeoutMs', 'vfEgress', 'sriovStateDir', 'vethShaping'];
const absolutePath = () => string().check(refine((p: string) => p.startsWith('/') && !p.includes('\0'), 'not an absolute path'));

// Built on first use: with no config file (the common case) the hook never needs them.
const buildLogSchema = () =>
  strictObject({
    file: _default(absolutePath(), DEFAULT_CONFIG.log.file),
    level: _default(oneOf(LOG_LEVELS), DEFAULT_CONFIG.log.level),
  });

const buildSchema = () =>
  strictObject({
    onError: _default(oneOf(['fail', 'warn']), DEFAULT_CONFIG.onError),
    // zod returns a default as is, without parsing it, so it must be the finished value
    log: _default(buildLogSchema(), () => ({ ...DEFAULT_CONFIG.log })),
    queueLatency: _default(
      pipe(
        string(),
        transform((text: string, ctx) => {
          const r = readQueueLatency(text);
          if (r.ok) return r.value;
          ctx.issues.push({ code: 'custom', message: r.reason, input: text });
          return NEVER;
        }),
      ),
      DEFAULT_CONFIG.queueLatencyUs,
    ),
    hookTimeoutMs: _default(int().check(gte(1000), lte(25000)), DEFAULT_CONFIG.hookTimeoutMs),
    vfEgress: _default(oneOf(['software', 'hardware', 'both']), DEFAULT_CONFIG.vfEgress),
    sriovStateDir: _default(absolutePath(), DEFAULT_CONFIG.sriovStateDir),
    vethShaping: _default(oneOf(['container', 'host']), DEFAULT_CONFIG.vethShaping),
  });
let schema: ReturnType<typeof buildSchema> | undefined;

/** What a valid value of each field looks like: the second half of every message. */
const VALID: Readonly<Record<string, string>> = {
  '': 'the file must hold a JSON object such as {"onError": "warn"}; {} gives all defaults',
  onError: 'use "fail" (bad annotations fail the container) or "warn" (start it unshaped)',
  log: 'use an object such as {"file": "/var/log/netqos/netqos.log", "level": "info"}',
  'log.file': 'use an absolute path such as "/var/log/netqos/netqos.log"',
  'log.level': 'use "debug", "info", "warn", "error" or "silent"',
  queueLatency: 'use a duration from 100us to 1s such as "5ms"',
  hookTimeoutMs: 'use a whole number of milliseconds from 1000 to 25000',
  vfEgress: 'use "software" (HTB on the VF), "hardware" (the PF caps the VF: ip link set PF vf N max_tx_rate) or "both"',
  sriovStateDir: 'use an absolute path such as "/run/netqos/sriov"',
  vethShaping: 'use "container" (shape inside the container) or "host" (shape a veth on its peer in the node\'s namespace)',
};

/** The config that `text` (the contents of the file at `path`) describes; INVALID_CONFIG otherwise. */
export function parseConfig(text: string, path: string): Config {
  let input: unknown;
  try {
    input = JSON.parse(text.replace(/^\uFEFF/, '')); // editors on some systems write a BOM
  } catch (e) {
    const detail = (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ');
    throw new NetqosError('INVALID_CONFIG', `invalid config ${path}: not valid JSON (${detail}); ${VALID['']}`, {
      cause: e,
    });
  }
  const parsed = (schema ??= buildSchema()).safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new NetqosError('INVALID_CONFIG', `invalid config ${path}: ${describe(issue, input)}`);
  }
  const { onError, log, queueLatency, hookTimeoutMs, vfEgress, sriovStateDir, vethShaping } = parsed.data;
  return { onError, log, queueLatencyUs: queueLatency, hookTimeoutMs, vfEgress, sriovStateDir, vethShaping };
}

type Issue = core.$ZodIssue;

/** `field=value: why; what is valid` for the first thing wrong */
function describe(issue: Issue | undefined, input: unknown): string {
  if (issue === undefined) return 'does not validate';
  const field = issue.path.join('.');
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    const fields = (field === 'log' ? Object.keys(DEFAULT_CONFIG.log) : CONFIG_FIELDS).join(', ');
    const where = field === '' ? '' : `${field}.`;
    return `${where}${key}=${show(at(input, [...issue.path, key]))}: unknown field; the fields ${
      field === '' ? 'are' : `of ${field} are`
    } ${fields}`;
  }
  if (field === '') return `the top level is not a JSON object; ${VALID['']}`;
  return `${field}=${show(at(input, issue.path))}: ${why(issue)}; ${VALID[field] ?? ''}`;
}

function why(issue: Issue): string {
  switch (issue.code) {
    case 'invalid_type': // the only other type the schema asks for is hookTimeoutMs's integer
      if (issue.expected === 'object') return 'not an object';
      return issue.expected === 'string' ? 'not a string' : 'not a whole number';
    case 'too_small':
      return `below the minimum of ${issue.minimum}`;
    case 'too_big':
      return `above the maximum of ${issue.maximum}`;
    case 'invalid_value':
      return 'not one of the choices';
    default:
      return issue.message;
  }
}

/** the value at `path` inside the parsed JSON, to show the user what they wrote */
const at = (value: unknown, path: readonly PropertyKey[]): unknown =>
  path.reduce<unknown>(
    (v, k) => (typeof v === 'object' && v !== null ? (v as Record<PropertyKey, unknown>)[k] : undefined),
    value,
  );

/** a JSON value on one line, cut short if huge */
function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
