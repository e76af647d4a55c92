/** Process checks for tests that start and kill real servers. */
import { readFileSync } from "node:fs";

/**
 * True while `pid` runs. A zombie (exited, not yet reaped by its new parent) counts as gone:
 * signal 0 still reaches it, but it holds no ports and does nothing.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return false;
  }
}
