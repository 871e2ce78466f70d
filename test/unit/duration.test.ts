import { describe, expect, it } from 'vitest';
import { formatMicros, parseDuration, readDuration } from '../../src/domain/duration.js';
import { NetqosError } from '../../src/domain/errors.js';

describe('readDuration: microseconds', () => {
  const cases: Array<[string, number]> = [
    ['5ms', 5000],
    ['500us', 500],
    ['500µs', 500], // U+00B5 micro sign
    ['500μs', 500], // U+03BC greek mu: Go accepts both
    ['1.5ms', 1500],
    ['1.1ms', 1100], // exact, not 1100.0000000000002
    ['1s', 1_000_000],
    ['0.25s', 250_000],
    ['.5ms', 500],
    ['5.ms', 5000],
    ['100000ns', 100],
    ['1ns', 0.001],
    ['0ms', 0],
    ['+5ms', 5000],
    ['-5ms', -5000],
    ['-0s', 0],
  ];
  it.each(cases)('%j is %d us', (text, us) => {
    expect(readDuration(text)).toBe(us);
  });

  const malformed = [
    '',
    '5',
    '0',
    '1.5',
    'ms',
    '.ms',
    '5 ms',
    ' 5ms',
    '5ms ',
    '5MS',
    '5Ms',
    '5msec',
    '5sec',
    '1m', // Go's minute: meaningless at queue scale, so not accepted
    '1h',
    '1s500ms', // compound forms are not accepted
    '5e3us',
    '1,5ms',
    'fast',
  ];
  it.each(malformed)('%j is not a duration', (text) => {
    expect(readDuration(text)).toBeUndefined();
  });
});

describe('parseDuration', () => {
  it('returns microseconds', () => {
    expect(parseDuration('5ms')).toBe(5000);
    expect(parseDuration('0s')).toBe(0);
  });
  const rejected: Array<[string, string]> = [
    ['5', '"5" is not a duration; use a value such as "5ms", "500us" or "1s"'],
    ['-5ms', '"-5ms" is not a non-negative duration; use a value such as "5ms", "500us" or "1s"'],
  ];
  it.each(rejected)('rejects %j with INVALID_ARGUMENT', (text, message) => {
    let caught: unknown;
    try {
      parseDuration(text);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(NetqosError);
    expect((caught as NetqosError).code).toBe('INVALID_ARGUMENT');
    expect((caught as NetqosError).message).toBe(message);
  });
});

describe('formatMicros', () => {
  const cases: Array<[number, string]> = [
    [0, '0us'],
    [100, '100us'],
    [1500, '1.5ms'],
    [5000, '5ms'],
    [1_000_000, '1s'],
    [2_000_000, '2s'],
    [1_500_000, '1500ms'],
  ];
  it.each(cases)('%d -> %s, which reads back as the same value', (us, text) => {
    expect(formatMicros(us)).toBe(text);
    expect(readDuration(text)).toBe(us);
  });
});
