/**
 * The status page's one-line sentences (worker/target/target-sentences.ts) and the incident reading
 * (worker/target/incidents.ts), run in workerd: each state says what is happening and what happens next,
 * countdowns count, and a window of audit events reads as incidents, drills and open break-glass
 * requests.
 */
import { describe, expect, it } from "vitest";
import { rtoTrend } from "../../worker/http/status-page/card.tsx";
import { drillsOf, incidentsOf, sentenceFacts, timelineOf } from "../../worker/target/incidents.ts";
import {
  describeEvent,
  formatSpan,
  type SentencePolicy,
  sentenceText,
  targetSentence,
} from "../../worker/target/target-sentences.ts";
import type { AuditEvent, SignalView, TargetView } from "../../worker/target/target-view.ts";

const T0 = Date.parse("2026-12-01T10:00:00.000Z");
const iso = (ms: number) => new Date(T0 + ms).toISOString();
const policy: SentencePolicy = {
  holdSeconds: 30,
  flap: { windowSeconds: 600 },
  maxAutoActionsPerDay: 2,
  approval: "auto",
};

function signal(side: "primary" | "secondary", source: string, extra: Partial<SignalView> = {}): SignalView {
  return {
    key: `${source}:${side}`,
    source,
    side,
    status: "firing",
    soft: false,
    held: false,
    stale: false,
    incident: "i1",
    labels: { alertname: "GatewayDown" },
    annotations: {},
    notices: null,
    at: iso(0),
    receivedAt: iso(0),
    firstSeen: iso(0),
    lastSeen: iso(0),
    ...extra,
  };
}

function view(over: Partial<TargetView> = {}): TargetView {
  return {
    name: "egress-gw",
    activeSide: "primary",
    phase: "steady",
    paused: false,
    flapping: false,
    cooldownUntil: null,
    pendingSince: null,
    holdUntil: null,
    blocked: null,
    dismissed: null,
    configured: true,
    approvalDeadline: null,
    sides: {
      primary: { health: "up", upSince: null, firing: [], firingCount: 0 },
      secondary: { health: "up", upSince: null, firing: [], firingCount: 0 },
    },
    action: null,
    autoActionsLast24h: 0,
    lastDrill: null,
    ...over,
  };
}

const primaryDown = {
  primary: { health: "down" as const, upSince: null, firing: [signal("primary", "alertmanager")], firingCount: 1 },
  secondary: { health: "up" as const, upSince: null, firing: [], firingCount: 0 },
};

const say = (v: TargetView, now: number, extra: Partial<Parameters<typeof targetSentence>[1]> = {}) =>
  sentenceText(targetSentence(v, { now: T0 + now, policy, ...extra }), T0 + now);

describe("target sentences", () => {
  it("steady: both sides up", () => {
    expect(say(view(), 0)).toBe("steady on primary; both sides up");
    expect(targetSentence(view(), { now: T0, policy }).state).toBe("steady");
  });

  it("pending: how long the side is down, from which source, and a countdown to the failover", () => {
    const v = view({ phase: "pending", pendingSince: iso(0), holdUntil: iso(30_000), sides: primaryDown });
    expect(say(v, 8_000)).toBe(
      "pending: primary down for 8 s (alertmanager); failover to secondary in 22 s unless it recovers",
    );
    // The live parts are segments the page ticks: the same sentence 10 s later.
    expect(say(v, 18_000)).toBe(
      "pending: primary down for 18 s (alertmanager); failover to secondary in 12 s unless it recovers",
    );
    const segs = targetSentence(v, { now: T0 + 8_000, policy }).segments;
    expect(segs).toContainEqual({ until: iso(30_000) });
    expect(segs).toContainEqual({ since: iso(0) });
    expect(say(v, 8_000, { policy: { ...policy, approval: "required" } })).toContain(
      "approval requested to fail over to secondary in 22 s unless it recovers",
    );
  });

  it("blocked: flapping since its latch, resuming after a stable window", () => {
    const v = view({ flapping: true });
    expect(say(v, 0, { flappingSince: "2026-12-01T10:02:00.000Z" })).toBe(
      "blocked: flapping since 10:02 UTC; automatic action resumes after 10 stable minutes",
    );
    expect(say(v, 0, { policy: { ...policy, flap: { windowSeconds: 90 } } })).toBe(
      "blocked: flapping; automatic action resumes after 90 stable seconds",
    );
  });

  it("blocked after the hold: both sides down, other side not up, stale, rising, cooldown, budget", () => {
    const pending = (blocked: TargetView["blocked"], over: Partial<TargetView> = {}) =>
      view({ phase: "pending", pendingSince: iso(0), holdUntil: iso(30_000), sides: primaryDown, blocked, ...over });
    expect(say(pending("both-sides-down"), 40_000)).toBe(
      "blocked: both sides down; staying on primary (never switch to a down side) until one recovers; primary down for 40 s (alertmanager)",
    );
    expect(
      say(
        pending("other-side-not-up", {
          sides: { ...primaryDown, secondary: { health: "unknown", upSince: null, firing: [], firingCount: 1 } },
        }),
        40_000,
      ),
    ).toMatch(/^blocked: secondary is unknown, not up; failover waits until it is up/);
    expect(say(pending("other-side-stale"), 40_000)).toMatch(
      /^blocked: stale evidence: secondary's only firing signals are stale, so its health is unknown; clear them/,
    );
    const rising = pending("other-side-rising", {
      sides: { ...primaryDown, secondary: { health: "up", upSince: iso(20_000), firing: [], firingCount: 0 } },
    });
    expect(say(rising, 40_000, { policy: { ...policy, riseSeconds: 60 } })).toMatch(
      /^blocked: secondary is rising: up since 10:00 UTC, it must stay up 60 s \(riseSeconds\); failover in 40 s if it stays up/,
    );
    expect(say(pending("cooldown", { cooldownUntil: iso(300_000) }), 30_000)).toMatch(
      /^blocked: cooldown after the last switch until 10:05 UTC \(in 4 min 30 s\); then failover to secondary if primary is still down/,
    );
    expect(say(pending("budget", { autoActionsLast24h: 2 }), 40_000)).toMatch(
      /^blocked: the daily budget of 2 automatic actions is spent \(2 in the last 24 h\); a manual failover still works/,
    );
  });

  it("paused, cooldown and unconfigured say what they hold back", () => {
    expect(say(view({ paused: true }), 0)).toBe("paused: automatic action is off until an operator resumes");
    expect(say(view({ paused: true, phase: "pending", pendingSince: iso(0), sides: primaryDown }), 5_000)).toBe(
      "paused: automatic action is off until an operator resumes; primary down for 5 s (alertmanager)",
    );
    expect(say(view({ activeSide: "secondary", cooldownUntil: iso(600_000) }), 60_000)).toBe(
      "cooldown: steady on secondary after the last switch; no automatic switch until 10:10 UTC (in 9 min)",
    );
    expect(say(view({ configured: false }), 0)).toMatch(/^unconfigured: not in the configuration/);
  });

  it("awaiting approval names the switch and the deadline", () => {
    const v = view({ phase: "awaiting_approval", approvalDeadline: iso(900_000), sides: primaryDown });
    expect(say(v, 60_000, { approval: { kind: "failover", from: "primary", to: "secondary" } })).toBe(
      "awaiting approval: failover primary → secondary; an operator approves or cancels by 10:15 UTC (in 14 min), else it expires and nothing switches",
    );
  });

  it("executing names the running step; failed says what to do", () => {
    const action = {
      id: "egress-gw:3",
      kind: "failover" as const,
      from: "primary" as const,
      to: "secondary" as const,
      dryRun: false,
      status: "running" as const,
      steps: [
        { name: "preflight", status: "succeeded" as const, startedAt: iso(0), finishedAt: iso(1_000) },
        { name: "switch-route", status: "running" as const, startedAt: iso(1_000) },
        { name: "verify", status: "pending" as const },
      ],
    };
    expect(say(view({ phase: "executing", action }), 4_000)).toBe(
      "executing: failover primary → secondary (egress-gw:3), step switch-route running (2 of 3) for 3 s",
    );
    const failed = {
      ...action,
      status: "failed" as const,
      steps: [{ name: "switch-route", status: "failed" as const, detail: "route table locked" }],
      error: { code: "step-failed", message: "switch-route failed" },
    };
    expect(say(view({ phase: "failed", action: failed }), 0)).toBe(
      "failed: failover primary → secondary (egress-gw:3) failed at step switch-route (step-failed: switch-route failed); automatic action is off until an operator acts: retry it, revert to primary, or cancel",
    );
    expect(say(view({ phase: "failed", action: { ...failed, dryRun: true } }), 0)).toMatch(/retry it or cancel$/);
  });

  it("formats spans in whole seconds, minutes and hours", () => {
    expect([0, 999, 8_000, 90_000, 600_000, 3_600_000, 3_900_000].map(formatSpan)).toEqual([
      "0 s",
      "1 s",
      "8 s",
      "1 min 30 s",
      "10 min",
      "1 h",
      "1 h 5 min",
    ]);
  });
});

let seq = 0;
const ev = (at: number, type: string, detail: Record<string, unknown>): AuditEvent => ({
  seq: ++seq,
  at: iso(at),
  type,
  detail: detail as AuditEvent["detail"],
  cause: null,
});

/** One incident: down, hold, failover, steps, steady (like the machine audits it). */
function incident(start: number, id: string, ok: boolean): AuditEvent[] {
  return [
    ev(start, "side.health-changed", { side: "primary", health: "down", previous: "up" }),
    ev(start, "phase.changed", { from: "steady", to: "pending", reason: "primary down" }),
    ev(start + 30_000, "phase.changed", { from: "pending", to: "executing", reason: `failover ${id} to secondary` }),
    ev(start + 30_000, "action.dispatched", { id, kind: "failover", from: "primary", to: "secondary", dryRun: false }),
    ok
      ? ev(start + 34_000, "action.succeeded", { id, kind: "failover", recoveryMs: 4000 })
      : ev(start + 34_000, "action.failed", { id, code: "x", message: "boom" }),
    ev(start + 34_000, "phase.changed", { from: "executing", to: ok ? "steady" : "failed", reason: "report" }),
    ...(ok ? [] : [ev(start + 60_000, "command.accepted", { command: "cancel", actor: "alice" })]),
    ...(ok ? [] : [ev(start + 60_000, "phase.changed", { from: "failed", to: "steady", reason: "cancelled" })]),
  ];
}

describe("incidents from the audit window", () => {
  it("reads incidents newest first with action, recovery time and outcome; drills apart", () => {
    seq = 0;
    const events = [
      ...incident(0, "egress-gw:1", true),
      ev(100_000, "phase.changed", { from: "steady", to: "executing", reason: "drill" }),
      ev(100_000, "action.dispatched", {
        id: "egress-gw:2",
        kind: "drill",
        from: "primary",
        to: "secondary",
        dryRun: true,
      }),
      ev(103_000, "phase.changed", { from: "executing", to: "steady", reason: "dry run done" }),
      ev(103_000, "drill.completed", { mode: "dry-run", outcome: "completed", switches: [{ recoveryMs: 3000 }] }),
      ...incident(200_000, "egress-gw:3", false),
      ev(300_000, "side.health-changed", { side: "primary", health: "down", previous: "up" }),
      ev(300_000, "phase.changed", { from: "steady", to: "pending", reason: "primary down" }),
      ev(310_000, "phase.changed", { from: "pending", to: "steady", reason: "primary recovered during the hold" }),
      ev(400_000, "drill.completed", { mode: "dry-run", outcome: "completed", switches: [{ recoveryMs: 2000 }] }),
    ];
    const list = incidentsOf(events);
    expect(list.map((i) => [i.start, i.end, i.action, i.recoveryMs, i.outcome])).toEqual([
      [iso(300_000), iso(310_000), null, null, "recovered without action"],
      [iso(200_000), iso(260_000), "failover primary → secondary (egress-gw:3)", null, "cancelled by alice"],
      [iso(0), iso(34_000), "failover primary → secondary (egress-gw:1)", 34_000, "switched to secondary"],
    ]);
    const drills = drillsOf(events);
    expect(drills.map((d) => d.recoveryMs)).toEqual([[2000], [3000]]);
    expect(rtoTrend(drills)).toBe("RTO trend over 2 drills: 3.0 s → 2.0 s (1.0 s faster)");
    expect(incidentsOf(events, 2)).toHaveLength(2);
  });

  it("the timeline runs signal → hold → decision → action → end, with bars for spans", () => {
    seq = 0;
    const [first] = incidentsOf(incident(0, "egress-gw:1", true));
    if (!first) throw new Error("no incident");
    const rows = timelineOf(first, view(), T0 + 60_000);
    expect(rows.map((r) => [r.kind, r.start - T0, r.end === undefined ? null : r.end - T0])).toEqual([
      ["signal", 0, null],
      ["hold", 0, 30_000],
      ["decision", 30_000, null],
      ["action", 30_000, 34_000],
      ["event", 34_000, null],
      ["end", 34_000, null],
    ]);
    expect(rows[1]?.label).toBe("hold started: primary down");
    expect(rows[4]?.label).toBe("final report: egress-gw:1 succeeded (4000 ms from dispatch to report)");
  });

  it("a confirmed break-glass request reads as who asked and who confirmed", () => {
    seq = 0;
    const a = "a".repeat(32);
    const b = "b".repeat(32);
    const events = [
      ev(0, "breakglass.requested", { command: "failover", requester: "bob", reason: "dc on fire", nonce: a }),
      ev(1_000, "breakglass.requested", { command: "retry", requester: "bob", reason: "", nonce: b }),
      ev(2_000, "breakglass.approved", { command: "retry", requester: "bob", nonce: b, approver: "alice" }),
    ];
    expect(describeEvent(events[2] as AuditEvent)).toBe(
      "break-glass confirmed: forced retry by bob, confirmed by alice",
    );
  });

  it("facts for the sentence: the flapping latch and the approval awaited", () => {
    seq = 0;
    const events = [
      ev(0, "flapping.latched", { side: "primary", transitions: 5, windowSeconds: 600 }),
      ev(5_000, "approval.requested", { kind: "failover", from: "primary", to: "secondary" }),
    ];
    expect(sentenceFacts(events)).toEqual({
      flappingSince: iso(0),
      approval: { kind: "failover", from: "primary", to: "secondary" },
    });
    expect(sentenceFacts([...events, ev(9_000, "flapping.released", {})]).flappingSince).toBeNull();
  });
});
