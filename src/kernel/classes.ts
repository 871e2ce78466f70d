/**
 * Our HTB classes of some devices, read as text: iproute2 6.1 prints HTB classes as text
 * whatever -json says, and the text does not name the device, so one process per device.
 */
import { parseHtbClassText, type HtbClass } from '../plan/parse-class.js';
import { inNetns, type NetnsRef } from './netns.js';

export async function readHtbClasses(
  ref: NetnsRef,
  devs: readonly string[],
  opts: { timeoutMs?: number; counters?: boolean } = {},
): Promise<Map<string, HtbClass[]>> {
  const pairs = await Promise.all(
    devs.map(async (dev): Promise<[string, HtbClass[]]> => {
      const res = await inNetns(ref, 'tc', [...(opts.counters ? ['-s'] : []), 'class', 'show', 'dev', dev], { timeoutMs: opts.timeoutMs });
      return [dev, parseHtbClassText(res.stdout, dev)];
    }),
  );
  return new Map(pairs);
}
