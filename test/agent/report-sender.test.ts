/**
 * The report sender on its own: an attempt that cannot even be made (no signing secret, an
 * invalid report) is a failed attempt, answered false and backed off like an HTTP error, never a
 * throw (a throw once made the runner retry at once, forever, until the heap ran out).
 */
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../agent/log.ts";
import { createReportSender } from "../../agent/report-sender.ts";
import type { ActionReport } from "../../shared/protocol.ts";
import { freePort } from "../support/free-port.ts";

const report: ActionReport = {
  actionId: "app:1",
  target: "app",
  status: "succeeded",
  activeSide: "secondary",
  dryRun: false,
  steps: [{ name: "only", status: "succeeded" }],
  at: "2026-11-22T10:00:05.000Z",
};

function sender(secret: string) {
  const failures: string[] = [];
  let fetches = 0;
  const slept: number[] = [];
  const controller = new AbortController();
  const reports = createReportSender({
    reportUrl: "http://127.0.0.1:1/v1/agent/reports",
    secret,
    log: silentLogger,
    fetch: async () => {
      fetches += 1;
      return new Response(null, { status: 200 });
    },
    // Records the wait; the third one ends delivery as an abort would.
    sleep: async (ms) => {
      slept.push(ms);
      if (slept.length === 3) controller.abort(new Error("test over"));
      controller.signal.throwIfAborted();
    },
    initialDelayMs: 1,
    maxDelayMs: 4,
    onFailure: (reason) => failures.push(reason),
  });
  return { reports, failures, fetches: () => fetches, slept, signal: controller.signal };
}

describe("report sender", () => {
  it("answers false (a failed attempt) when the report cannot be signed, without sending it", async () => {
    const s = sender("");
    expect(await s.reports.sendOnce(report)).toBe(false);
    expect(s.fetches()).toBe(0);
    expect(s.failures).toHaveLength(1);
  });

  it("answers false for a report that does not match the protocol", async () => {
    const s = sender("a-secret");
    expect(await s.reports.sendOnce({ ...report, status: "exploded" } as unknown as ActionReport)).toBe(false);
    expect(s.fetches()).toBe(0);
    expect(s.failures).toHaveLength(1);
  });

  it("backs off between attempts it cannot sign, until aborted", async () => {
    const s = sender("");
    expect(await s.reports.deliver(() => report, s.signal)).toBeUndefined();
    expect(s.slept).toEqual([1, 2, 4]);
    expect(s.failures).toHaveLength(3);
    expect(s.fetches()).toBe(0);
  });

  it("names the transport error of a failed delivery, not just 'fetch failed'", async () => {
    const closed = await freePort();
    const failures: string[] = [];
    const reports = createReportSender({
      reportUrl: `http://127.0.0.1:${closed}/v1/agent/reports`,
      secret: "a-secret",
      log: silentLogger,
      onFailure: (reason) => failures.push(reason),
    });
    expect(await reports.sendOnce(report)).toBe(false);
    expect(failures).toEqual([expect.stringContaining(`ECONNREFUSED 127.0.0.1:${closed}`)]);
  });

  it("still delivers a signable report at the first attempt", async () => {
    const s = sender("a-secret");
    expect(await s.reports.deliver(() => report, s.signal)).toEqual(report);
    expect(s.fetches()).toBe(1);
    expect(s.slept).toEqual([]);
  });
});
