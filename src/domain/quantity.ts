/**
 * Kubernetes resource quantities ("10M", "1Gi", "1.5k", "1e6"), read the way apimachinery's
 * resource.ParseQuantity reads them, because the bandwidth annotations are Kubernetes quantities
 * and a value must mean here exactly what it means to kubelet, containerd and the CNI plugin.
 *
 *   <quantity> ::= <sign>? <number> <suffix>?
 *   <number>   ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
 *   <suffix>   ::= Ki | Mi | Gi | Ti | Pi | Ei            (binary: 2^10 .. 2^60)
 *                | n | u | m | k | M | G | T | P | E       (decimal: 10^-9 .. 10^18)
 *                | e<sign>?<digits> | E<sign>?<digits>     (decimal exponent)
 *
 * No whitespace and no other units: "10Mbit", "10 M" and "10mb" are not quantities, and
 * "10m" is 10 milli (0.01). One deliberate difference: upstream's scanner also takes a missing
 * number as 0 ("k", ".", "-", "Mi" all parse as 0); we reject those as malformed. Zero is below
 * every range we accept, so only the wording of the rejection differs.
 */
import { NetqosError } from './errors.js';

export interface Quantity {
  /**
   * The value, rounded up (away from zero) to a multiple of 1e-9 as apimachinery stores it.
   * Absurd exponents ("1e400") give Infinity; every caller's range check rejects that.
   */
  value: number;
  /**
   * The value rounded up (away from zero) to an integer: what Quantity.Value() returns and
   * what containerd and kubelet compare against their limits and hand to CNI.
   */
  integer: number;
}

const QUANTITY = /^([+-]?)([0-9]*)(?:\.([0-9]*))?(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$/;

const DECIMAL_EXPONENT: Readonly<Record<string, number>> = {
  n: -9, u: -6, m: -3, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18,
};
const BINARY_EXPONENT: Readonly<Record<string, number>> = {
  Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60,
};

/** The quantity `text` stands for, or undefined when it is not a Kubernetes quantity. */
export function readQuantity(text: string): Quantity | undefined {
  const m = QUANTITY.exec(text);
  if (!m) return undefined;
  const [, sign = '', whole = '', fraction = '', suffix = ''] = m;
  if (whole === '' && fraction === '') return undefined; // "k", ".", "-": see the header
  let e10 = 0;
  let e2 = 0;
  if (suffix in BINARY_EXPONENT) e2 = BINARY_EXPONENT[suffix] ?? 0;
  else if (suffix in DECIMAL_EXPONENT) e10 = DECIMAL_EXPONENT[suffix] ?? 0;
  else if (suffix !== '') e10 = Number(suffix.slice(1)); // e<int> / E<int>
  const magnitude = exactValue(whole + fraction, e10 - fraction.length, e2);
  if (sign !== '-' || magnitude.integer === 0) return magnitude;
  return { value: -magnitude.value, integer: -magnitude.integer };
}

/** The value of a quantity, for front ends (CLI flags); throws INVALID_ARGUMENT otherwise. */
export function parseQuantity(text: string): number {
  const q = readQuantity(text);
  if (q === undefined) {
    throw new NetqosError(
      'INVALID_ARGUMENT',
      `${JSON.stringify(text)} is not a Kubernetes quantity; use a value such as "10M" or "1Gi"`,
    );
  }
  return q.value;
}

const LOG10_2 = Math.log10(2);

/**
 * digits x 10^e10 x 2^e2, non-negative, computed exactly with BigInt so that the rounding
 * matches apimachinery at the edges of a range ("1000000000000000.01" is above 1P, which a
 * float would miss). Magnitudes far outside any range take a float shortcut so a hostile
 * exponent ("1e999999999") cannot make us build an enormous BigInt.
 */
function exactValue(digits: string, e10: number, e2: number): Quantity {
  const significant = digits.replace(/^0+/, '');
  if (significant === '') return { value: 0, integer: 0 };
  const order = significant.length + e10 + e2 * LOG10_2; // value < 10^order
  if (order > 40) {
    // e10 beyond any double is Infinity outright (and "1e1e+21" would be NaN, not Infinity)
    const huge = e10 > 400 ? Infinity : Number(`${significant}e${e10}`) * 2 ** e2;
    return { value: huge, integer: huge };
  }
  if (order < -20) return { value: 1e-9, integer: 1 }; // non-zero rounds up to 1n, like upstream
  const scaled = BigInt(significant) << BigInt(e2);
  const shift = e10 + 9; // count in units of 1e-9
  const nanos =
    shift >= 0 ? scaled * 10n ** BigInt(shift) : ceilDiv(scaled, 10n ** BigInt(-shift));
  return { value: Number(`${nanos}e-9`), integer: Number(ceilDiv(nanos, 1_000_000_000n)) };
}

const ceilDiv = (a: bigint, b: bigint): bigint => (a + b - 1n) / b;

const DECIMAL_UNITS: ReadonlyArray<readonly [number, string]> = [
  [1e18, 'E'], [1e15, 'P'], [1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k'],
];

/**
 * Short human text for a count of bits: 10e6 -> "10M", 1.5e9 -> "1.5G", 1073741824 ->
 * "1.074G", 500 -> "500". Decimal units with at most three decimals: it is itself a valid
 * quantity, but rounded, so use it for display, never to round-trip a value.
 */
export function formatBits(bits: number): string {
  const size = Math.abs(bits);
  for (const [unit, suffix] of DECIMAL_UNITS) {
    if (size >= unit) return `${Number((bits / unit).toFixed(3))}${suffix}`;
  }
  return `${Number(bits.toFixed(3))}`;
}
