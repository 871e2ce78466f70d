/**
 * Command-line parsing for one command, on node:util parseArgs (tokens, non-strict) so that every
 * complaint is our own one-line message: the flag, what is wrong, and the command's usage.
 * Pure: argv in, flags out, or a NetqosError('INVALID_ARGUMENT') that main turns into exit 2.
 */
import { parseArgs } from 'node:util';
import { NetqosError } from '../domain/errors.js';

export interface FlagSpec {
  type: 'string' | 'boolean';
  short?: string;
}

export interface CommandSpec {
  name: string;
  /** one line: `netqos apply <target> [--egress RATE] ...` */
  usage: string;
  flags: Readonly<Record<string, FlagSpec>>;
  /** how many positional arguments the command takes at most */
  maxPositionals: number;
}

export interface ParsedArgs {
  /** flags as given: strings for string flags, true for boolean flags */
  values: Record<string, string | true>;
  positionals: string[];
}

/** every command takes these */
export const COMMON_FLAGS: Readonly<Record<string, FlagSpec>> = { help: { type: 'boolean', short: 'h' } };

/** A usage error: the message, then the command's usage, on one line. */
export function usageError(spec: Pick<CommandSpec, 'usage'>, message: string): NetqosError {
  return new NetqosError('INVALID_ARGUMENT', `${message}; usage: ${spec.usage}`);
}

export function parseCommandArgs(spec: CommandSpec, argv: readonly string[]): ParsedArgs {
  const flags = { ...COMMON_FLAGS, ...spec.flags };
  const { tokens } = parseArgs({
    args: [...argv],
    options: flags,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const values: Record<string, string | true> = {};
  const positionals: string[] = [];
  for (const t of tokens) {
    if (t.kind === 'positional') {
      positionals.push(t.value);
      continue;
    }
    if (t.kind !== 'option') continue; // the `--` terminator
    const flag = Object.hasOwn(flags, t.name) ? flags[t.name] : undefined;
    if (!flag) throw usageError(spec, `unknown option ${shownOption(t.rawName)}`);
    if (flag.type === 'boolean') {
      if (t.inlineValue) throw usageError(spec, `option --${t.name} takes no value`);
      values[t.name] = true;
      continue;
    }
    const value = t.value;
    if (value === undefined) throw usageError(spec, `option --${t.name} needs a value`);
    if (!t.inlineValue && value.startsWith('-') && value !== '-') {
      throw usageError(
        spec,
        `option --${t.name} needs a value, got the option-like ${JSON.stringify(value)} (write --${t.name}=${value} if that is the value)`,
      );
    }
    if (Object.hasOwn(values, t.name)) throw usageError(spec, `option --${t.name} given twice`);
    values[t.name] = value;
  }
  if (values.help === true) return { values, positionals };
  if (positionals.length > spec.maxPositionals) {
    const extra = positionals[spec.maxPositionals] ?? '';
    throw usageError(spec, `unexpected argument ${JSON.stringify(extra)}`);
  }
  return { values, positionals };
}

/** `-x` / `--name`, quoted when it carries anything odd */
function shownOption(raw: string): string {
  return /^--?[A-Za-z0-9][A-Za-z0-9-]*$/.test(raw) ? raw : JSON.stringify(raw);
}

/** The value of a string flag (undefined when absent). */
export const stringFlag = (a: ParsedArgs, name: string): string | undefined => {
  const v = a.values[name];
  return typeof v === 'string' ? v : undefined;
};

export const booleanFlag = (a: ParsedArgs, name: string): boolean => a.values[name] === true;

/** `invalid --flag "value": why; example`: the message every bad flag value gets */
export function invalidFlag(flag: string, value: string, why: string, example: string): NetqosError {
  return new NetqosError('INVALID_ARGUMENT', `invalid --${flag} ${show(value)}: ${why}; ${example}`);
}

/** the value as the user wrote it: quoted, escaped to one line, cut short if huge */
function show(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
}
