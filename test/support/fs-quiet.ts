/**
 * File-system reads that answer "nothing" instead of throwing: the harnesses look at /proc,
 * /sys/fs/cgroup and /run while processes and directories come and go under them.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';

export function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export function safeReaddir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

export function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
