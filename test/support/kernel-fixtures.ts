/**
 * The recorded kernel output in test/fixtures/kernel/ (README.txt there says how each file was
 * recorded), read the way the planner's callers read the kernel. Pure: files in, data out.
 */
import { readFileSync } from 'node:fs';
import type { Observed } from '../../src/domain/link.js';
import { parseIpLinks } from '../../src/plan/parse-ip.js';
import { parseFilters, parseQdiscs } from '../../src/plan/parse-tc.js';

/** one fixture file's text */
export const fixture = (name: string): string => readFileSync(new URL(`../fixtures/kernel/${name}`, import.meta.url), 'utf8');

/** the stdout of a *.handmade.json fixture ({"_comment", "stdout"}) as ip would print it */
export const handmade = (name: string): string => JSON.stringify((JSON.parse(fixture(name)) as { stdout: unknown }).stdout);

/** `ip -json -details link show` from a recorded or hand-made file */
export const linksOf = (name: string) => parseIpLinks(name.endsWith('.handmade.json') ? handmade(name) : fixture(name));

/**
 * Observed from recorded files, as discover() reads it: filters: device -> `tc -json filter show
 * dev X ingress` file; rootFilters: device -> `tc -json filter show dev X parent 4e51:` file
 */
export function observe(links: string, qdiscs?: string, filters?: Record<string, string>, rootFilters?: Record<string, string>): Observed {
  const o: Observed = { links: linksOf(links), qdiscs: qdiscs ? parseQdiscs(fixture(qdiscs)) : [] };
  if (filters || rootFilters) {
    o.filters = [
      ...Object.entries(filters ?? {}).flatMap(([dev, file]) => parseFilters(fixture(file), dev)),
      ...Object.entries(rootFilters ?? {}).flatMap(([dev, file]) => parseFilters(fixture(file), dev, '4e51:')),
    ];
  }
  return o;
}
