/**
 * Structured logs: one JSON object per line, in pino's line format (numeric level, time in ms,
 * pid, name, msg), so the same tools read them. Written synchronously to the configured file.
 *
 * Not pino itself: measured in the OCI hook, whose whole budget beyond Node's start is 15 ms,
 * pino's module graph (60 KB of its 109 KB bundle) cost 5.8 ms to compile and its first record
 * 6.5 ms more. A hook writes one or two records; this is the part of pino it needs.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { LogLevel } from './domain/config.js';

export interface Logger {
  debug(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

/** pino's numeric levels */
const LEVEL: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50, silent: Infinity };

export function createLogger(opts: { file: string; level: LogLevel; name: string }): Logger {
  let dirReady = false;
  const write = (level: Exclude<LogLevel, 'silent'>) => (fields: object, msg: string): void => {
    if (LEVEL[level] < LEVEL[opts.level]) return;
    const line = JSON.stringify({ level: LEVEL[level], time: Date.now(), pid: process.pid, name: opts.name, ...fields, msg });
    try {
      if (!dirReady) {
        mkdirSync(dirname(opts.file), { recursive: true });
        dirReady = true;
      }
      appendFileSync(opts.file, `${line}\n`);
    } catch {
      // an unwritable log must never fail a container
    }
  };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}
