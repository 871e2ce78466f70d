/**
 * `netqos update` flags -> QosUpdate (with the readers and limits of `apply` and the
 * annotations), and the raw strings the daemon's API takes. Pure.
 */
import { UPDATE_FIELDS, readUpdate, type QosUpdate, type UpdateField } from '../domain/update.js';
import { stringFlag, usageError, type CommandSpec, type FlagSpec, type ParsedArgs } from './args.js';

export const UPDATE_FLAGS: Readonly<Record<string, FlagSpec>> = Object.fromEntries(UPDATE_FIELDS.map((f) => [f, { type: 'string' }]));

/** the update flags as given, by field name (what the API's JSON carries) */
export function updateFields(args: ParsedArgs): Partial<Record<UpdateField, string>> {
  const out: Partial<Record<UpdateField, string>> = {};
  for (const f of UPDATE_FIELDS) {
    const v = stringFlag(args, f);
    if (v !== undefined) out[f] = v;
  }
  return out;
}

export function readUpdateFlags(spec: CommandSpec, args: ParsedArgs): QosUpdate {
  const fields = updateFields(args);
  if (Object.keys(fields).length === 0) {
    throw usageError(spec, `nothing to update: give at least one of ${UPDATE_FIELDS.map((f) => `--${f}`).join(', ')}`);
  }
  return readUpdate(fields, (f) => `--${f}`);
}
