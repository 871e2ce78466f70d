/**
 * Updates made through the daemon's API outlive the daemon: they are kept per pod sandbox in
 * /var/lib/netqos/overrides.json (0600, directory 0700), written atomically (a temporary file,
 * fsync, rename, fsync of the directory), and applied on top of the pod's annotations whenever
 * the daemon shapes the pod again (RunPodSandbox, Synchronize after a restart). An override ends
 * with its pod: stop, remove, or a Synchronize that no longer lists it.
 *
 *   { "version": 1, "pods": { "<sandbox id>": { "pod": "default/web",
 *       "update": { "egress": { "rateBps": 20000000 }, "queueLatencyUs": 10000 },
 *       "updatedAt": "2026-01-01T00:00:00.000Z" } } }
 *
 * A file that does not validate is reported and moved aside (<file>.bad), never half-used.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { gte, int, literal, lte, number, optional, record, strictObject, string } from 'zod/mini';
import { MAX_BITS, MAX_QUEUE_LATENCY_US, MIN_BITS, MIN_QUEUE_LATENCY_US } from '../domain/annotations.js';
import { NetqosError, oneLine } from '../domain/errors.js';
import type { QosUpdate } from '../domain/update.js';

export interface OverrideRecord {
  /** "<namespace>/<name>", for people reading the file */
  pod: string;
  update: QosUpdate;
  updatedAt: string;
}

const bits = () => optional(number().check(int(), gte(MIN_BITS), lte(MAX_BITS)));
const direction = () => optional(strictObject({ rateBps: bits(), burstBits: bits() }));
const buildSchema = () =>
  strictObject({
    version: literal(1),
    pods: record(
      string(),
      strictObject({
        pod: string(),
        update: strictObject({
          egress: direction(),
          ingress: direction(),
          queueLatencyUs: optional(number().check(int(), gte(MIN_QUEUE_LATENCY_US), lte(MAX_QUEUE_LATENCY_US))),
        }),
        updatedAt: string(),
      }),
    ),
  });

/** The records of a file's text; throws INVALID_CONFIG naming the file and the first problem. */
export function parseOverrides(text: string, path: string): Map<string, OverrideRecord> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new NetqosError('INVALID_CONFIG', `overrides file ${path} is not JSON (${oneLine(e)})`);
  }
  const r = buildSchema().safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new NetqosError('INVALID_CONFIG', `overrides file ${path}: ${issue?.path.join('.') || 'the document'}: ${issue?.message ?? 'invalid'}`);
  }
  const out = new Map<string, OverrideRecord>();
  for (const [id, rec] of Object.entries(r.data.pods)) out.set(id, rec as OverrideRecord);
  return out;
}

export function renderOverrides(records: ReadonlyMap<string, OverrideRecord>): string {
  const pods: Record<string, OverrideRecord> = {};
  for (const id of [...records.keys()].sort()) pods[id] = records.get(id)!;
  return `${JSON.stringify({ version: 1, pods }, null, 2)}\n`;
}

/** The overrides of one daemon, in memory and on disk. */
export class OverrideStore {
  private records = new Map<string, OverrideRecord>();

  constructor(readonly path: string) {}

  /**
   * Reads the file (none: no overrides). A bad file is renamed to <file>.bad and its problem
   * returned for the log; the store then starts empty.
   */
  load(): string | undefined {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      return `cannot read overrides file ${this.path} (${(e as NodeJS.ErrnoException).code ?? oneLine(e)}): starting without overrides`;
    }
    try {
      this.records = parseOverrides(text, this.path);
      return undefined;
    } catch (e) {
      try {
        renameSync(this.path, `${this.path}.bad`);
      } catch {
        // left in place: the next save replaces it
      }
      return `${oneLine(e)}: moved to ${this.path}.bad, starting without overrides`;
    }
  }

  get(id: string): OverrideRecord | undefined {
    return this.records.get(id);
  }

  all(): Map<string, OverrideRecord> {
    return new Map(this.records);
  }

  set(id: string, rec: OverrideRecord): void {
    const next = new Map(this.records).set(id, rec);
    this.save(next);
    this.records = next;
  }

  delete(id: string): void {
    if (!this.records.has(id)) return;
    const next = new Map(this.records);
    next.delete(id);
    this.save(next);
    this.records = next;
  }

  /** Forgets every override whose pod is not in `ids`. */
  retain(ids: ReadonlySet<string>): void {
    const next = new Map([...this.records].filter(([id]) => ids.has(id)));
    if (next.size === this.records.size) return;
    this.save(next);
    this.records = next;
  }

  private save(records: ReadonlyMap<string, OverrideRecord>): void {
    const dir = dirname(this.path);
    const tmp = `${this.path}.tmp-${process.pid}`;
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeFileSync(tmp, renderOverrides(records), { mode: 0o600 });
      const fd = openSync(tmp, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.path);
      const d = openSync(dir, 'r');
      try {
        fsyncSync(d);
      } finally {
        closeSync(d);
      }
    } catch (e) {
      throw new NetqosError('KERNEL', `cannot write overrides file ${this.path}: ${(e as NodeJS.ErrnoException).code ?? oneLine(e)}`, { cause: e });
    }
  }
}
