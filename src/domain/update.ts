/**
 * A live update: the limits to change on a target netqos already shapes, everything else kept as
 * it is. Read from the CLI's flags or the daemon API's fields (the same names, the same readers
 * and limits as the annotations), merged into the spec in force. Pure.
 *
 * Semantics (docs/update.md):
 * - only what is given changes; a rate given without a burst keeps a burst the user set, and a
 *   derived burst (10 ms of rate) follows the new rate;
 * - a burst may be given alone: it applies to the rate in force;
 * - only directions already shaped can change: adding one would create an ifb and a redirect,
 *   which is `netqos apply`'s work, not an in-place change.
 */
import { readBits, readQueueLatency, type Checked } from './annotations.js';
import { NetqosError } from './errors.js';
import type { Direction, DirectionLimit, QosSpec } from './spec.js';

export interface DirectionUpdate {
  rateBps?: number;
  burstBits?: number;
}

export interface QosUpdate {
  egress?: DirectionUpdate;
  ingress?: DirectionUpdate;
  queueLatencyUs?: number;
}

/** the field names, on the command line (--egress) and in the API's JSON ("egress") alike */
export const UPDATE_FIELDS = ['egress', 'ingress', 'egress-burst', 'ingress-burst', 'queue-latency'] as const;
export type UpdateField = (typeof UPDATE_FIELDS)[number];

const EXAMPLES: Readonly<Record<UpdateField, string>> = {
  egress: 'use a value such as "10M" (10 Mbit/s) or "1Gi"',
  ingress: 'use a value such as "10M" (10 Mbit/s) or "1Gi"',
  'egress-burst': 'use a value in bits such as "100k" or "1M" (125 kB)',
  'ingress-burst': 'use a value in bits such as "100k" or "1M" (125 kB)',
  'queue-latency': 'use a duration from 100us to 1s such as "5ms" or "500us"',
};

/** how a front end names a bad field in its one line: `--egress` or `field "egress"` */
export type FieldLabel = (field: UpdateField) => string;

/**
 * The update the fields ask for. Throws INVALID_ARGUMENT naming the field, the value, why and
 * an example; and when nothing at all is given.
 */
export function readUpdate(fields: Readonly<Partial<Record<UpdateField, string>>>, label: FieldLabel): QosUpdate {
  const read = <T>(field: UpdateField, r: (text: string) => Checked<T>): T | undefined => {
    const text = fields[field];
    if (text === undefined) return undefined;
    const c = r(text);
    if (!c.ok) throw new NetqosError('INVALID_ARGUMENT', `invalid ${label(field)} ${show(text)}: ${c.reason}; ${EXAMPLES[field]}`);
    return c.value;
  };
  const u: QosUpdate = {};
  for (const dir of ['egress', 'ingress'] as const) {
    const rateBps = read(dir, (t) => readBits(t, 'bit/s'));
    const burstBits = read(`${dir}-burst`, (t) => readBits(t, 'bits'));
    if (rateBps === undefined && burstBits === undefined) continue;
    u[dir] = { ...(rateBps !== undefined ? { rateBps } : {}), ...(burstBits !== undefined ? { burstBits } : {}) };
  }
  const latency = read('queue-latency', readQueueLatency);
  if (latency !== undefined) u.queueLatencyUs = latency;
  if (isEmptyUpdate(u)) {
    throw new NetqosError('INVALID_ARGUMENT', `nothing to update: give at least one of ${UPDATE_FIELDS.map(label).join(', ')}`);
  }
  return u;
}

export const isEmptyUpdate = (u: QosUpdate): boolean => !u.egress && !u.ingress && u.queueLatencyUs === undefined;

/** `later` over `earlier`, field by field: how successive updates of one pod accumulate. */
export function mergeUpdates(earlier: QosUpdate, later: QosUpdate): QosUpdate {
  const out: QosUpdate = {};
  for (const dir of ['egress', 'ingress'] as const) {
    if (earlier[dir] || later[dir]) out[dir] = { ...earlier[dir], ...later[dir] };
  }
  const latency = later.queueLatencyUs ?? earlier.queueLatencyUs;
  if (latency !== undefined) out.queueLatencyUs = latency;
  return out;
}

/**
 * The spec in force after the update. `what` names the target in the error when the update
 * touches a direction that is not shaped (NOT_FOUND: nothing of ours to change there).
 */
export function applyUpdate(current: QosSpec, u: QosUpdate, what: string): QosSpec {
  const next: QosSpec = { ...current };
  for (const dir of ['egress', 'ingress'] as const satisfies readonly Direction[]) {
    const change = u[dir];
    if (!change) continue;
    const now = current[dir];
    if (!now) {
      throw new NetqosError(
        'NOT_FOUND',
        `${what}: ${dir} is not shaped, so there is no ${dir} limit to update; netqos update only changes limits in force (shape a new direction with netqos apply)`,
      );
    }
    const limit: DirectionLimit = { ...now };
    if (change.rateBps !== undefined) limit.rateBps = change.rateBps;
    if (change.burstBits !== undefined) limit.burstBits = change.burstBits;
    next[dir] = limit;
  }
  if (u.queueLatencyUs !== undefined) next.queueLatencyUs = u.queueLatencyUs;
  return next;
}

function show(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
}
