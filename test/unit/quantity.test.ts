import { describe, expect, it } from 'vitest';
import { NetqosError } from '../../src/domain/errors.js';
import { formatBits, parseQuantity, readQuantity } from '../../src/domain/quantity.js';

describe('readQuantity: values as apimachinery reads them', () => {
  // [text, value, integer (Value(): rounded up)]
  const cases: Array<[string, number, number]> = [
    ['0', 0, 0],
    ['1', 1, 1],
    ['999', 999, 999],
    ['1k', 1e3, 1e3],
    ['10M', 1e7, 1e7],
    ['1G', 1e9, 1e9],
    ['1T', 1e12, 1e12],
    ['1P', 1e15, 1e15],
    ['1E', 1e18, 1e18],
    ['1Ki', 1024, 1024],
    ['1Mi', 2 ** 20, 2 ** 20],
    ['1Gi', 2 ** 30, 2 ** 30],
    ['1Ti', 2 ** 40, 2 ** 40],
    ['1Pi', 2 ** 50, 2 ** 50],
    ['1Ei', 2 ** 60, 2 ** 60],
    ['0.5Mi', 524_288, 524_288],
    ['1.5k', 1500, 1500],
    ['1.5Gi', 1.5 * 2 ** 30, 1.5 * 2 ** 30],
    ['1e3', 1e3, 1e3],
    ['1E6', 1e6, 1e6],
    ['1e+3', 1e3, 1e3],
    ['1e-3', 0.001, 1],
    ['15e-1', 1.5, 2],
    ['+10M', 1e7, 1e7],
    ['-10M', -1e7, -1e7],
    ['-1.5', -1.5, -2], // away from zero, like inf.RoundUp
    ['-0', 0, 0],
    ['000', 0, 0],
    ['007k', 7000, 7000],
    ['1.', 1, 1],
    ['.5', 0.5, 1],
    ['.5k', 500, 500],
    ['5.k', 5000, 5000],
    ['10m', 0.01, 1], // milli, not mega
    ['1500m', 1.5, 2],
    ['100u', 1e-4, 1],
    ['100n', 1e-7, 1],
    ['0.000000000001', 1e-9, 1], // non-zero rounds up to 1n, as upstream
    ['1000.5', 1000.5, 1001],
    ['1000000000000000', 1e15, 1e15],
    ['1.0000001P', 1_000_000_100_000_000, 1_000_000_100_000_000],
    // a float would lose the .01 and call this exactly 1P
    ['1000000000000000.01', 1e15, 1e15 + 1],
    ['1e400', Infinity, Infinity],
    ['1e-99999', 1e-9, 1],
  ];
  it.each(cases)('%j is %d (Value() %d)', (text, value, integer) => {
    expect(readQuantity(text)).toEqual({ value, integer });
  });

  const malformed = [
    '',
    ' 10M',
    '10M ',
    '10 M',
    '10Mbit',
    '10mb',
    '10MB',
    '10Mbps',
    '1K', // only lowercase k is kilo
    '1KiB',
    '1ki',
    '1mi',
    '1e', // "e" alone is no suffix; "E" is exa
    '1e1.5',
    '1ee3',
    '1Mi5',
    '1.2.3',
    '--1',
    '+-1',
    '1,000',
    '1_000',
    '0x10',
    'Infinity',
    'NaN',
    'ten',
    'M',
    'k', // upstream reads a missing number as 0; we reject it (see the module header)
    '.',
    '-',
    '+',
    '.k',
    '1.5 Gi',
    '１０M', // full-width digits
    '10M\n',
  ];
  it.each(malformed)('%j is not a quantity', (text) => {
    expect(readQuantity(text)).toBeUndefined();
  });
});

describe('parseQuantity', () => {
  it('returns the value', () => {
    expect(parseQuantity('10M')).toBe(10_000_000);
    expect(parseQuantity('10m')).toBe(0.01);
    expect(parseQuantity('1Gi')).toBe(1_073_741_824);
  });
  it('throws INVALID_ARGUMENT naming the text', () => {
    const e = (() => {
      try {
        parseQuantity('10 M');
      } catch (err) {
        return err;
      }
    })();
    expect(e).toBeInstanceOf(NetqosError);
    expect((e as NetqosError).code).toBe('INVALID_ARGUMENT');
    expect((e as NetqosError).message).toBe(
      '"10 M" is not a Kubernetes quantity; use a value such as "10M" or "1Gi"',
    );
  });
});

describe('formatBits', () => {
  const cases: Array<[number, string]> = [
    [0, '0'],
    [500, '500'],
    [1000, '1k'],
    [1500, '1.5k'],
    [10e6, '10M'],
    [1.5e9, '1.5G'],
    [2 ** 30, '1.074G'],
    [1e15, '1P'],
    [2e18, '2E'],
    [-10e6, '-10M'],
  ];
  it.each(cases)('%d -> %s', (bits, text) => {
    expect(formatBits(bits)).toBe(text);
  });
  it('gives text that is itself a quantity', () => {
    for (const [bits] of cases) expect(readQuantity(formatBits(bits))).toBeDefined();
  });
});
