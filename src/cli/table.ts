/** Plain-text tables and the few number formats the CLI prints. Pure. */
import { formatBits } from '../domain/quantity.js';

export type Align = 'left' | 'right';

/**
 * Columns padded to their widest cell, two spaces apart, numbers usually right-aligned; no
 * trailing spaces. Ends with a newline.
 */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[], align: readonly Align[] = []): string {
  const all = [header, ...rows];
  const columns = Math.max(...all.map((r) => r.length));
  const widths = Array.from({ length: columns }, (_, c) => Math.max(...all.map((r) => [...(r[c] ?? '')].length)));
  const line = (r: readonly string[]): string =>
    widths
      .map((w, c) => {
        const cell = r[c] ?? '';
        const pad = ' '.repeat(w - [...cell].length);
        return align[c] === 'right' ? pad + cell : cell + pad;
      })
      .join('  ')
      .trimEnd();
  return `${all.map(line).join('\n')}\n`;
}

/** a rate in bit/s the way the annotations write it: 10000000 -> "10M" */
export const formatRate = (bps: number): string => formatBits(bps);

/** a size in bytes: 12500 -> "12500B" (exact: these are the numbers tc was given) */
export const formatBytes = (bytes: number): string => `${bytes}B`;

/** a relative error as a signed percentage: -0.0123 -> "-1.23 %" */
export function formatPercent(x: number, digits = 2): string {
  const text = (x * 100).toFixed(digits);
  return `${x > 0 ? '+' : ''}${Number(text) === 0 ? (0).toFixed(digits) : text} %`;
}
