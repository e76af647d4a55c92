/**
 * The sandbox's servers die with the process that started them, even when it is SIGKILLed
 * (agent/sandbox/tied-child.ts): a killed agent or test worker leaves no named or etcd behind.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import { processAlive } from "../support/processes.ts";

const parentScript = new URL("../support/tied-parent.ts", import.meta.url).pathname;
const started: number[] = [];
let parent: ChildProcess | undefined;

/** Resolves once `pid` is gone (the kernel reaps it through init); rejects after `ms`. */
async function gone(pid: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (processAlive(pid)) {
    if (Date.now() > deadline) throw new Error(`process ${pid} still running ${ms} ms after its parent died`);
    await new Promise((r) => setTimeout(r, 20));
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
  for (const pid of started.splice(0)) if (processAlive(pid)) process.kill(pid, "SIGKILL");
  parent?.kill("SIGKILL");
});

describe("tied children", () => {
  for (const what of ["sleep", "named", "etcd"]) {
    it(`a ${what} started by a process that is SIGKILLed dies with it`, async () => {
      const [pid = -1] = await startParent(what);
      expect(processAlive(pid)).toBe(true);
      parent?.kill("SIGKILL");
      await once(parent as ChildProcess, "exit");
      await gone(pid, 5000);
    });
  }
});
