/**
 * Short durations written the Go way ("5ms", "500us", "1.5ms", "1s"), for queue latencies.
 * Units: ns, us (also µs and μs, as Go accepts), ms, s. A unit is required: a bare "5" would
 * silently mean different things to different readers. One number and one unit only: Go's
 * compound forms ("1s500ms") and minutes/hours have no use at millisecond scales.
 */
import { NetqosError } from './errors.js';

const DURATION = /^([+-]?)([0-9]*)(?:\.([0-9]*))?(ns|us|µs|μs|ms|s)$/;

/** power of ten that turns the unit into microseconds */
const MICROS_EXPONENT: Readonly<Record<string, number>> = {
  ns: -3, us: 0, µs: 0, μs: 0, ms: 3, s: 6,
};

/**
 * The duration `text` stands for, in microseconds (fractional below 1 us, negative for
 * "-5ms"), or undefined when it is not a duration.
 */
export function readDuration(text: string): number | undefined {
  const m = DURATION.exec(text);
  if (!m) return undefined;
  const [, sign = '', whole = '', fraction = '', unit = ''] = m;
  if (whole === '' && fraction === '') return undefined; // "ms", ".s"
  // decimal text -> number in one rounding, so "1.1ms" is exactly 1100, not 1100.0000000000002
  const us = Number(`${whole || '0'}.${fraction || '0'}e${MICROS_EXPONENT[unit] ?? 0}`);
  return sign === '-' && us !== 0 ? -us : us;
}

/** A non-negative duration in microseconds, for front ends; throws INVALID_ARGUMENT otherwise. */
export function parseDuration(text: string): number {
  const us = readDuration(text);
  if (us === undefined || us < 0) {
    throw new NetqosError(
      'INVALID_ARGUMENT',
      `${JSON.stringify(text)} is not a ${us === undefined ? '' : 'non-negative '}duration; ` +
        'use a value such as "5ms", "500us" or "1s"',
    );
  }
  return us;
}

/** "5ms", "500us", "1.5ms", "1s": the shortest exact text for a count of microseconds */
export function formatMicros(us: number): string {
  if (us !== 0 && us % 1_000_000 === 0) return `${us / 1_000_000}s`;
  if (us >= 1000) return `${us / 1000}ms`;
  return `${us}us`;
}
