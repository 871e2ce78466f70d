/**
 * One `ip -batch -` and one `tc -batch -` open in a namespace: discovery asks them, the plan is
 * then written to the same processes. A container setup costs two processes, started together.
 */
import { sessionInNetns, type NetnsRef } from './netns.js';
import type { Session } from './runner.js';

export interface NetnsTools {
  ip: Session;
  tc: Session;
}

export function openTools(ref: NetnsRef, timeoutMs?: number): NetnsTools {
  return {
    ip: sessionInNetns(ref, 'ip', ['-json', '-details', '-batch', '-'], { timeoutMs }),
    tc: sessionInNetns(ref, 'tc', ['-json', '-batch', '-'], { timeoutMs }),
  };
}

/** Ends both processes, whatever state they are in (after an error: nothing more to say). */
export async function closeTools(t: NetnsTools): Promise<void> {
  await Promise.all([t.ip.end().catch(() => undefined), t.tc.end().catch(() => undefined)]);
}
