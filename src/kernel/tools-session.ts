/**
 * One `ip -batch -` and one `tc -batch -` open in a namespace: discovery asks them, the plan is
 * then written to the same processes. A container setup costs two processes, started together.
 */
import { sessionInNetns, type NetnsRef } from './netns.js';
import { lazySession, type Session } from './runner.js';

export interface NetnsTools {
  ip: Session;
  tc: Session;
  /**
   * ip's `link show` (JSON). Every use of the tools begins with it, so it is asked the moment ip
   * starts, before tc is spawned: ip answers while Node is blocked spawning tc. The first call
   * gets that answer; later calls ask again.
   */
  links(): Promise<string>;
}

/** Questions that print one line in any namespace: asked after a session's last command. */
export const IP_CHECK = 'link show dev lo';
export const TC_CHECK = 'qdisc show dev lo';

export interface OpenOptions {
  /** start tc on its first use instead of now (a teardown starts ip's work first) */
  tcOnFirstUse?: boolean;
}

export function openTools(ref: NetnsRef, timeoutMs?: number, o: OpenOptions = {}): NetnsTools {
  const ip = sessionInNetns(ref, 'ip', ['-json', '-details', '-batch', '-'], { timeoutMs });
  let early: Promise<string[]> | undefined = ip.ask(['link show']);
  early.catch(() => undefined); // a session closed unused: whoever used it saw the failure
  const startTc = (): Session => sessionInNetns(ref, 'tc', ['-json', '-batch', '-'], { timeoutMs });
  const links = async (): Promise<string> => {
    const asked = early ?? ip.ask(['link show']);
    early = undefined;
    return (await asked)[0] ?? '[]';
  };
  return { ip, tc: o.tcOnFirstUse ? lazySession(startTc) : startTc(), links };
}

/** Ends both processes and waits for them, whatever state they are in (after an error: nothing more to say). */
export async function closeTools(t: NetnsTools): Promise<void> {
  await Promise.all([t.ip.end().catch(() => undefined), t.tc.end().catch(() => undefined)]);
}

/** Closes both without waiting: every command they ran was confirmed by an answer. */
export function releaseTools(t: NetnsTools): void {
  t.ip.close();
  t.tc.close();
}
