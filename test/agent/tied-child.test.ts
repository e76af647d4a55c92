/**
 * The sandbox's servers die with the process that started them, even when it is SIGKILLed
 * (agent/sandbox/tied-child.ts): a killed agent or test worker leaves no named or etcd behind.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it } from "vitest";

const parentScript = new URL("../support/tied-parent.ts", import.meta.url).pathname;
const started: number[] = [];
let parent: ChildProcess | undefined;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Resolves once `pid` is gone (the kernel reaps it through init); rejects after `ms`. */
async function gone(pid: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (alive(pid) && !isZombie(pid)) {
    if (Date.now() > deadline) throw new Error(`process ${pid} still running ${ms} ms after its parent died`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

async function startParent(what: string): Promise<number[]> {
  parent = spawn(process.execPath, [parentScript, what], { stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: parent.stdout as NodeJS.ReadableStream });
  const [line] = (await once(lines, "line")) as [string];
  const { pids } = JSON.parse(line) as { pids: number[] };
  started.push(...pids);
  return pids;
}

afterEach(() => {
  for (const pid of started.splice(0)) if (alive(pid)) process.kill(pid, "SIGKILL");
  parent?.kill("SIGKILL");
});

describe("tied children", () => {
  for (const what of ["sleep", "named", "etcd"]) {
    it(`a ${what} started by a process that is SIGKILLed dies with it`, async () => {
      const [pid = -1] = await startParent(what);
      expect(alive(pid)).toBe(true);
      parent?.kill("SIGKILL");
      await once(parent as ChildProcess, "exit");
      await gone(pid, 5000);
    });
  }
});
