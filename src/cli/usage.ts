/** The command table and the help texts. */
import { apply } from './apply.js';
import type { Command } from './command.js';
import { demo } from './demo.js';
import { doctor } from './doctor.js';
import { gc } from './gc.js';
import { remove } from './remove.js';
import { status } from './status.js';
import { TARGET_USAGE } from './target.js';
import { update } from './update.js';

export const COMMANDS: readonly Command[] = [apply, update, remove, status, gc, doctor, demo];
export const MAIN_USAGE = 'netqos <apply|update|remove|status|gc|doctor|demo> [options] (netqos --help)';

export const findCommand = (name: string): Command | undefined => COMMANDS.find((c) => c.spec.name === name);

export function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.spec.name.length));
  return [
    'netqos: container network QoS (HTB on the device for egress, an ifb for ingress)',
    '',
    'usage: netqos <command> [options]',
    '',
    ...COMMANDS.map((c) => `  ${c.spec.name.padEnd(width)}  ${c.summary}`),
    '',
    `Targets ${TARGET_USAGE}: a podman container name or id, the PID of any process in the`,
    'container, or a network namespace file (/run/netns/NAME, /proc/PID/ns/net). The node\'s own',
    'namespace is always refused. Directions are the container\'s view (egress = out of it).',
    '',
    'netqos <command> --help shows a command\'s options; netqos --version the version.',
    'Exit codes: 0 done, 1 failed, 2 usage error.',
    '',
  ].join('\n');
}

export const commandHelp = (c: Command): string => `usage: ${c.spec.usage}\n\n${c.help}\n`;
