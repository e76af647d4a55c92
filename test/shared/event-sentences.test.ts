import { describe, expect, it } from "vitest";
import { eventSentence } from "../../shared/event-sentences.ts";

describe("eventSentence", () => {
  it("writes action.progress with every step, never cut short", () => {
    const steps = Array.from({ length: 30 }, (_, i) => `step-number-${i}:${i < 29 ? "succeeded" : "running"}`);
    const s = eventSentence({ type: "action.progress", detail: { id: "egress-gw:3", steps } });
    expect(s.startsWith("progress of egress-gw:3: step-number-0 succeeded, step-number-1 succeeded")).toBe(true);
    expect(s.endsWith("step-number-28 succeeded, step-number-29 running")).toBe(true);
    expect(s).not.toContain("{");
  });

  it("writes the demo's sentences for the incident path", () => {
    expect(
      eventSentence({
        type: "signal.firing",
        detail: { source: "alertmanager", side: "primary", status: "firing", key: "am:1" },
      }),
    ).toBe("signal received: alertmanager says primary is firing (am:1)");
    expect(
      eventSentence({ type: "phase.changed", detail: { from: "steady", to: "pending", reason: "primary down" } }),
    ).toBe("hold started: primary down");
    expect(
      eventSentence({
        type: "action.failed",
        detail: { id: "t:1", kind: "failover", to: "secondary", code: "DNS_TIMEOUT", message: "no answer" },
      }),
    ).toBe("final report: t:1 failover to secondary FAILED: DNS_TIMEOUT: no answer");
    expect(
      eventSentence({
        type: "command.accepted",
        detail: { command: "pause", actor: "alice", reason: "maintenance", force: false },
      }),
    ).toBe("command accepted: pause (by alice; reason: maintenance)");
  });

  it("writes an unknown event type key by key, in full", () => {
    const long = "x".repeat(400);
    expect(eventSentence({ type: "future.thing", detail: { a: 1, b: long } })).toBe(`future.thing: a 1, b ${long}`);
  });
});
