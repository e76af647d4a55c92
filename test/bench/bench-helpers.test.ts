/**
 * The ingest benches' own helpers: CPU read from /proc (the figure the issue-19 goals are stated
 * in) and the bodies' fan-out, which decides how many Durable Object calls a webhook makes.
 */
import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { body } from "../../bench/ingest.ts";
import { cpuMs, workerdDescendants } from "../../bench/workerd-cpu.ts";

interface Alert {
  labels: Record<string, string>;
  fingerprint: string;
  startsAt: string;
}
const alertsOf = (text: string) => (JSON.parse(text) as { alerts: Alert[] }).alerts;

describe("CPU from /proc/<pid>/stat", () => {
  it("counts this process's user + sys time as it burns CPU", () => {
    const before = cpuMs([process.pid]);
    const until = performance.now() + 150;
    let x = 0;
    while (performance.now() < until) x += Math.sqrt(x + 1);
    expect(x).toBeGreaterThan(0);
    // Clock ticks are 10 ms; 150 ms of spinning shows as at least 50.
    expect(cpuMs([process.pid]) - before).toBeGreaterThanOrEqual(50);
  });

  it("finds a program's processes among a root's descendants, and only those", async () => {
    const child = spawn("sleep", ["30"], { stdio: "ignore" });
    try {
      await new Promise((r) => child.once("spawn", r));
      const pid = child.pid ?? -1;
      expect(workerdDescendants(process.pid, "sleep")).toContain(pid);
      expect(workerdDescendants(process.pid)).not.toContain(pid);
      expect(cpuMs([pid])).toBeGreaterThanOrEqual(0);
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("counts a process that has exited as 0", () => {
    expect(cpuMs([2 ** 22 + 1])).toBe(0);
  });
});

describe("ingest bench bodies", () => {
  it("spread: a 10-alert body reaches 10 targets with 10 distinct alerts", () => {
    for (const seq of [0, 1, 7, 42]) {
      const alerts = alertsOf(body(seq, 10));
      expect(new Set(alerts.map((a) => a.labels.target)).size).toBe(10);
      expect(new Set(alerts.map((a) => a.fingerprint)).size).toBe(10);
    }
  });

  it("grouped: a body reaches one target, in turn, with 10 distinct alerts of it", () => {
    for (const seq of [0, 1, 9, 10, 23]) {
      const alerts = alertsOf(body(seq, 10, "grouped"));
      expect(new Set(alerts.map((a) => a.labels.target))).toEqual(new Set([`ingest-${seq % 10}`]));
      expect(new Set(alerts.map((a) => a.fingerprint)).size).toBe(10);
    }
  });

  it("every later body is a newer update of each alert it carries (the full write path)", () => {
    for (const fanOut of ["spread", "grouped"] as const) {
      const startsAt = (seq: number) => alertsOf(body(seq, 10, fanOut))[0]?.startsAt ?? "";
      expect(startsAt(5) < startsAt(6)).toBe(true);
    }
  });
});
