/**
 * Structured JSON logs (pino) to the configured file. pino is loaded on the first record only:
 * its module costs 6 to 8 ms, a large share of the OCI hook's 15 ms budget, and most hook runs
 * under the default level write one record at the very end.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { LogLevel } from './domain/config.js';

export interface Logger {
  debug(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
  /** waits until every record is written */
  flush(): Promise<void>;
}

const ORDER: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50, silent: 100 };

export function createLogger(opts: { file: string; level: LogLevel; name: string }): Logger {
  type Pino = import('pino').Logger;
  let pending: Promise<Pino | undefined> | undefined;
  const chain: Promise<unknown>[] = [];
  const open = (): Promise<Pino | undefined> =>
    (pending ??= import('pino').then(
      ({ default: pino }) => {
        try {
          mkdirSync(dirname(opts.file), { recursive: true });
          const dest = pino.destination({ dest: opts.file, sync: true, append: true });
          return pino({ name: opts.name, level: opts.level, base: { pid: process.pid } }, dest);
        } catch {
          return undefined; // an unwritable log file must never fail a container
        }
      },
      () => undefined,
    ));
  const at =
    (level: Exclude<LogLevel, 'silent'>) =>
    (fields: object, msg: string): void => {
      if (ORDER[level] < ORDER[opts.level]) return;
      chain.push(open().then((l) => l?.[level](fields, msg)));
    };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    flush: async () => {
      await Promise.all(chain);
    },
  };
}
