/**
 * The one error type of netqos. Every failure carries a stable code (what kind of failure), a
 * one-line message that names the input and what would be valid, and the original cause.
 * Front ends (hook exit code, NRI reply, CLI exit code) convert it exactly once.
 */
export type ErrorCode =
  | 'INVALID_ANNOTATION' // a bandwidth annotation has a value we cannot accept
  | 'INVALID_CONFIG' // /etc/netqos/config.json does not validate
  | 'INVALID_ARGUMENT' // a CLI flag or a hook's stdin is malformed
  | 'HOST_NETNS' // the target is the node's own network namespace: never shaped
  | 'NOT_FOUND' // a namespace, process, container or interface does not exist
  | 'KERNEL' // ip/tc rejected an operation
  | 'TIMEOUT' // a child process ran past its deadline
  | 'MISSING_TOOL' // ip, tc or nsenter is not installed
  | 'UNSUPPORTED' // the kernel lacks a feature the policy needs
  | 'PROTOCOL' // a container runtime sent bytes that are not valid NRI / ttrpc, or broke its rules
  | 'ALREADY_RUNNING'; // another netqos NRI plugin already shapes this node

export class NetqosError extends Error {
  override readonly name = 'NetqosError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export const isNetqosError = (e: unknown): e is NetqosError => e instanceof NetqosError;

/** One line for a user: the message of a NetqosError, or the first line of anything else. */
export function oneLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.split('\n', 1)[0] ?? text;
}
