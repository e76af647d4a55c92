/** One reading of a step's duration for the audit log, Slack (worker/target/notifier.ts stepDuration) and the status page. */
import { describe, expect, it } from "vitest";
import { stepDurationMs } from "../../shared/protocol.ts";

const at = (s: number) => new Date(Date.parse("2026-12-01T12:00:00.000Z") + s * 1000).toISOString();

describe("stepDurationMs", () => {
  it("is the interval from start to finish, and null while either is missing", () => {
    expect(stepDurationMs({ startedAt: at(0), finishedAt: at(3.2) })).toBe(3200);
    expect(stepDurationMs({ startedAt: at(0) })).toBe(null);
    expect(stepDurationMs({})).toBe(null);
  });

  it("is null, not NaN or negative, for times that do not make an interval", () => {
    expect(stepDurationMs({ startedAt: "yesterday", finishedAt: at(1) })).toBe(null);
    expect(stepDurationMs({ startedAt: at(5), finishedAt: at(1) })).toBe(null);
  });
});
