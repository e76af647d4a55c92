import { describe, expect, it } from "vitest";
import { duration, eventLine, note, statusTable, type TargetView, table, targetDetail } from "../../cli/render.ts";

const NOW = Date.parse("2026-11-22T10:00:00.000Z");
const ago = (s: number) => new Date(NOW - s * 1000).toISOString();
const later = (s: number) => new Date(NOW + s * 1000).toISOString();

const steady: TargetView = {
  name: "egress-gw",
  activeSide: "primary",
  phase: "steady",
  sides: { primary: { health: "up", upSince: ago(3600), firing: [] }, secondary: { health: "up", firing: [] } },
  action: null,
};

describe("turnout's output", () => {
  it("aligns table columns to the widest cell and leaves no trailing spaces", () => {
    const t = table(
      ["A", "BB"],
      [
        ["long value", "x"],
        ["y", ""],
      ],
    );
    expect(t.split("\n")).toEqual(["A           BB", "----------  --", "long value  x", "y"]);
  });

  it("says durations in words", () => {
    expect([duration(400), duration(12_000), duration(243_000), duration(7_500_000)]).toEqual([
      "0 s",
      "12 s",
      "4 min 3 s",
      "2 h 5 min",
    ]);
  });

  it("notes why a target is as it is: paused, flapping, down for, approval deadline, failed, cooldown", () => {
    expect(note(steady, NOW)).toBe("");
    expect(note({ ...steady, paused: true, flapping: true }, NOW)).toBe("paused; flapping");
    expect(note({ ...steady, phase: "pending", pendingSince: ago(8) }, NOW)).toBe("primary down for 8 s");
    expect(note({ ...steady, phase: "awaiting_approval", approvalDeadline: later(90) }, NOW)).toBe(
      "approve within 1 min 30 s",
    );
    expect(
      note(
        {
          ...steady,
          phase: "failed",
          action: {
            id: "egress-gw:2",
            kind: "failover",
            status: "failed",
            error: { code: "DNS_TIMEOUT", message: "" },
          },
        },
        NOW,
      ),
    ).toBe("DNS_TIMEOUT: retry, revert or cancel");
    expect(note({ ...steady, cooldownUntil: later(600) }, NOW)).toBe("cooldown 10 min left");
  });

  it("shows the running step in the table and every step in the detail", () => {
    const executing: TargetView = {
      ...steady,
      phase: "executing",
      sides: {
        primary: {
          health: "down",
          firing: [{ key: "am:1", source: "alertmanager", soft: false, held: true, at: ago(40) }],
          firingCount: 3,
        },
        secondary: { health: "up", firing: [] },
      },
      action: {
        id: "egress-gw:1",
        kind: "failover",
        from: "primary",
        to: "secondary",
        status: "running",
        steps: [
          {
            name: "preflight",
            status: "succeeded",
            startedAt: ago(3),
            finishedAt: ago(2.955),
            detail: "operator 3/3 ready",
          },
          { name: "delete-outgoing", status: "running", startedAt: ago(2) },
          { name: "create-incoming", status: "pending" },
        ],
      },
    };
    const row = statusTable([executing], NOW).split("\n")[2];
    expect(row).toMatch(
      /^egress-gw\s+primary\s+executing\s+down \(3 firing\)\s+up\s+egress-gw:1 failover running at delete-outgoing$/,
    );
    const detail = targetDetail(executing, NOW);
    expect(detail).toContain("primary   down (active)");
    expect(detail).toContain(`  firing alertmanager am:1 [held] since ${ago(40)}`);
    expect(detail).toContain("  … and 2 more firing");
    expect(detail).toContain("action egress-gw:1: failover primary → secondary, running");
    expect(detail).toContain("  succeeded preflight in 45 ms: operator 3/3 ready");
    expect(detail).toContain("  running   delete-outgoing");
    expect(detail).toContain("  pending   create-incoming");
  });

  it("writes an event as #seq, UTC time and its sentence", () => {
    expect(
      eventLine({
        seq: 12,
        at: "2026-11-22T10:00:03.026Z",
        type: "action.progress",
        detail: { id: "t:1", steps: ["preflight:succeeded", "update:running"] },
      }),
    ).toBe("#12    10:00:03.026  progress of t:1: preflight succeeded, update running");
  });
});
