/**
 * CPU time of workerd processes from /proc/<pid>/stat (Linux), for the ingest benches' "CPU per
 * webhook": `utime + stime` of every workerd process that serves one endpoint, read before and
 * after N requests. A process's figures include all its threads, so one read per process suffices.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/** One /proc/<pid>/stat line, split after the `(comm)` field (which may itself hold spaces). */
interface ProcStat {
  pid: number;
  comm: string;
  ppid: number;
  pgrp: number;
  /** utime + stime, in clock ticks. */
  ticks: number;
}

/** Clock ticks per second (`getconf CLK_TCK`); 100 on every Linux this runs on, read once anyway. */
const TICKS_PER_SECOND = (() => {
  try {
    const n = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    return n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  // Fields after comm, numbered from 3 (state) as in proc(5): ppid 4, pgrp 5, utime 14, stime 15.
  const rest = text.slice(close + 2).split(" ");
  const field = (n: number) => Number(rest[n - 3]);
  return {
    pid,
    comm: text.slice(open + 1, close),
    ppid: field(4),
    pgrp: field(5),
    ticks: field(14) + field(15),
  };
}

function allStats(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (s) out.push(s);
  }
  return out;
}

/**
 * The workerd processes descending from `root` (wrangler's process, or this Node process for
 * Miniflare); `comm` names another program (tests).
 */
export function workerdDescendants(root: number, comm = "workerd"): number[] {
  const stats = allStats();
  const children = new Map<number, ProcStat[]>();
  for (const s of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), s]);
  const found: number[] = [];
  const queue = [root];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    for (const child of children.get(pid) ?? []) {
      if (child.comm === comm) found.push(child.pid);
      queue.push(child.pid);
    }
  }
  return found.sort((a, b) => a - b);
}

/** Total user + system CPU of `pids`, in milliseconds (a process that exited counts 0). */
export function cpuMs(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) ticks += readStat(pid)?.ticks ?? 0;
  return (ticks * 1000) / TICKS_PER_SECOND;
}
