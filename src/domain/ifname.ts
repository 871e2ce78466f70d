/** Interface names as the kernel accepts them (net/core/dev.c dev_valid_name). Pure. */
import type { Checked } from './annotations.js';

/** IFNAMSIZ - 1: the kernel's limit on an interface name, in bytes */
const MAX_IFNAME_BYTES = 15;

/** One name: 1..15 bytes, not "." or "..", no "/", ":" or whitespace. The reason quotes the name. */
export function readIfname(name: string): Checked<string> {
  const shown = JSON.stringify(name);
  const bad = (reason: string): Checked<never> => ({ ok: false, reason });
  if (name === '') return bad('no interface named');
  if (Buffer.byteLength(name, 'utf8') > MAX_IFNAME_BYTES) return bad(`${shown} is longer than ${MAX_IFNAME_BYTES} bytes`);
  if (name === '.' || name === '..') return bad(`${shown} is not an interface name`);
  const badChar = /[/:]|\s|[\x00-\x1f\x7f]/.exec(name)?.[0];
  if (badChar !== undefined) {
    const what = badChar === '/' || badChar === ':' ? `"${badChar}"` : 'whitespace or a control character';
    return bad(`${shown} contains ${what}`);
  }
  return { ok: true, value: name };
}
