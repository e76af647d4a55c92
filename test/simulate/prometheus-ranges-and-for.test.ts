/**
 * The pure parts of the Prometheus input: splitting a range into requests Prometheus accepts
 * (≤ 11,000 points each, every step exactly once), `for` applied as rules/alerting.go applies it,
 * and the duration and time syntax of the options.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  alertIntervals,
  exprIntervals,
  MAX_POINTS,
  parseDuration,
  parseTime,
  type Series,
  splitRange,
} from "../../worker/simulate/prometheus.ts";

const S = 1000;

describe("splitRange", () => {
  it("covers every step exactly once in pieces of at most 11,000 points", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 40_000 }), fc.integer({ min: 1, max: 120 }), (steps, stepSeconds) => {
        const step = stepSeconds * S;
        const start = 1_700_000_000_000;
        const end = start + steps * step;
        const pieces = splitRange(start, end, step);
        const points: number[] = [];
        for (const [from, to] of pieces) {
          const n = (to - from) / step + 1;
          expect(n).toBeLessThanOrEqual(MAX_POINTS);
          for (let t = from; t <= to; t += step) points.push(t);
        }
        expect(points).toEqual(Array.from({ length: steps + 1 }, (_, i) => start + i * step));
      }),
      { numRuns: 60 },
    );
  });
});

const series = (
  times: number[],
  metric: Record<string, string> = { __name__: "gateway_up", gateway: "a" },
): Series => ({
  metric,
  values: times.map((t): [number, string] => [t * S, "0"]),
});

describe("exprIntervals: an alerting rule's `for`", () => {
  it("fires at the first evaluation at least `for` after the series appeared, resolves at the first without it", () => {
    // Present at 0..4 (step 1 s), then 10..11: for 2 s fires the first run at 2 and resolves at 5;
    // the second run lasts 1 s and never fires.
    const out = exprIntervals([series([0, 1, 2, 3, 4, 10, 11])], S, 2 * S, "GatewayDown", 100 * S);
    expect(out).toEqual([{ labels: { alertname: "GatewayDown", gateway: "a" }, start: 2 * S, end: 5 * S }]);
  });

  it("for 0 fires at once; an alert still firing at the range's end has no end", () => {
    expect(exprIntervals([series([5, 6, 7])], S, 0, undefined, 7 * S)).toEqual([
      { labels: { gateway: "a" }, start: 5 * S, end: null },
    ]);
  });
});

describe("alertIntervals: ALERTS firing runs", () => {
  it("keeps firing series only, without __name__ and alertstate", () => {
    const firing = series([3, 4, 5], { __name__: "ALERTS", alertname: "X", alertstate: "firing", gateway: "a" });
    const pending = series([1, 2], { __name__: "ALERTS", alertname: "X", alertstate: "pending", gateway: "a" });
    expect(alertIntervals([pending, firing], S, 60 * S)).toEqual([
      { labels: { alertname: "X", gateway: "a" }, start: 3 * S, end: 6 * S },
    ]);
  });
});

describe("option syntax", () => {
  it("reads Prometheus durations and relative times", () => {
    expect(parseDuration("1m")).toBe(60_000);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("500ms")).toBe(500);
    expect(parseDuration("1.5h")).toBeNull();
    expect(parseDuration("m")).toBeNull();
    const now = Date.UTC(2026, 11, 1);
    expect(parseTime("now", now)).toBe(now);
    expect(parseTime("-30d", now)).toBe(now - 30 * 86_400_000);
    expect(parseTime("2026-11-01T00:00:00Z", now)).toBe(Date.UTC(2026, 10, 1));
    expect(parseTime("yesterday", now)).toBeNull();
  });
});
