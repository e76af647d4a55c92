import { describe, expect, it } from "vitest";
import { Sim } from "./sim.ts";

/** A target whose primary went down and whose failover `egress-gw:1` is in flight. */
function executing(policy = {}, autoDeliver = true): Sim {
  const sim = new Sim({
    policy: { holdSeconds: 30, actionTimeoutSeconds: 600, dispatchRetries: 5, ...policy },
    autoDeliver,
  });
  sim.observe({ primary: ["alertmanager"] });
  sim.advance(30);
  expect(sim.state.phase).toBe("executing");
  expect(sim.state.action?.id).toBe("egress-gw:1");
  return sim;
}

// Rule 5: dispatch with id <target>:<epoch>; succeeded → activeSide = to, cooldown, steady;
// failed → failed; no report within actionTimeoutSeconds → re-dispatch the same id up to
// dispatchRetries, then failed; reports for other ids or old epochs are ignored and audited.
describe("rule 5: executing, reports and timeouts", () => {
  it("a succeeded report switches the active side, starts cooldown and returns to steady", () => {
    const sim = executing({ cooldownSeconds: 600 });
    sim.advance(12);
    sim.report("running", { steps: [{ name: "delete-primary-route", status: "running" }] });
    expect(sim.state.action?.status).toBe("running");
    sim.advance(8);
    sim.report("succeeded", { activeSide: "secondary" });
    expect(sim.state).toMatchObject({ phase: "steady", activeSide: "secondary", cooldownUntil: sim.now + 600_000 });
    expect(sim.state.action).toMatchObject({ status: "succeeded", finishedAt: sim.now });
    const ok = sim.events.find((e) => e.type === "action.succeeded");
    expect(ok?.detail.recoveryMs).toBe(20_000);
  });

  it("a failed report moves to failed and stays there until retry", () => {
    const sim = executing();
    sim.report("failed", { error: { code: "preflight", message: "DaemonSet not ready" } });
    expect(sim.state.phase).toBe("failed");
    expect(sim.state.action?.error).toEqual({ code: "preflight", message: "DaemonSet not ready" });
    expect(sim.notes.some((n) => n.includes("FAILED: DaemonSet not ready"))).toBe(true);
    sim.advance(24 * 3600);
    expect(sim.state.phase).toBe("failed");
    expect(sim.command("retry", { actor: "U1" }).rejected).toBeUndefined();
    expect(sim.ids()).toEqual(["egress-gw:1", "egress-gw:2"]);
    expect(sim.dispatches.at(-1)).toMatchObject({ kind: "failover", to: "secondary" });
  });

  const timeouts = [
    { retries: 0, sends: 1 },
    { retries: 2, sends: 3 },
    { retries: 5, sends: 6 },
  ];
  for (const c of timeouts) {
    it(`without reports re-sends the same id ${c.retries} times, then fails (dispatchRetries ${c.retries})`, () => {
      const sim = executing({ dispatchRetries: c.retries });
      sim.advance(600 * (c.retries + 1) - 1);
      expect(sim.state.phase).toBe("executing");
      sim.advance(1);
      expect(sim.state.phase).toBe("failed");
      expect(sim.dispatches).toHaveLength(c.sends);
      expect(new Set(sim.dispatches.map((d) => JSON.stringify(d))).size).toBe(1);
      expect(sim.types().filter((t) => t === "action.redispatched")).toHaveLength(c.retries);
      expect(sim.state.action?.error?.code).toBe("action-timeout");
    });
  }

  it("a running report restarts the timeout", () => {
    const sim = executing();
    sim.advance(500);
    sim.report("running");
    sim.advance(500);
    expect(sim.types()).not.toContain("action.redispatched");
    sim.advance(100);
    expect(sim.types()).toContain("action.redispatched");
  });

  it("failed deliveries retry with exponential backoff (5 s × 2^n, capped at 5 min), then fail", () => {
    const sim = executing({ dispatchRetries: 8 }, false);
    const delays: number[] = [];
    for (let i = 0; i < 9; i++) {
      const before = sim.now;
      sim.delivered(false, "connect ECONNREFUSED");
      if (sim.state.phase !== "executing") break;
      delays.push((sim.timer ?? 0) - before);
      sim.advance((sim.timer ?? 0) / 1000 - sim.now / 1000);
    }
    expect(delays).toEqual([5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]);
    expect(sim.state.phase).toBe("failed");
    expect(sim.state.action?.error?.code).toBe("dispatch-failed");
    expect(sim.dispatches.every((d) => d.id === "egress-gw:1")).toBe(true);
  });

  it("waits as long as the receiver's Retry-After asks, up to the 5-minute cap", () => {
    const sim = executing({ dispatchRetries: 5 });
    const at = sim.now;
    sim.delivered(false, "503", { retryAfterMs: 15_000 });
    expect(sim.timer).toBe(at + 15_000);
    sim.advance(15);
    const later = sim.now;
    sim.delivered(false, "503", { retryAfterMs: 86_400_000 });
    expect(sim.timer).toBe(later + 300_000);
  });

  it("a final delivery failure (QStash gave up) fails the action at once, with retries left", () => {
    const sim = executing({ dispatchRetries: 5 });
    const sent = sim.dispatches.length;
    sim.delivered(false, "QStash gave up delivering to the agent (last status 503)", { final: true });
    expect(sim.state.phase).toBe("failed");
    expect(sim.state.action?.error).toEqual({
      code: "dispatch-failed",
      message: "QStash gave up delivering to the agent (last status 503)",
    });
    sim.advance(600);
    expect(sim.dispatches).toHaveLength(sent);
  });

  it("a successful delivery after failures resets the backoff", () => {
    const sim = executing({ dispatchRetries: 1 });
    sim.delivered(false, "503");
    sim.advance(5);
    sim.delivered(true);
    expect(sim.state.action?.deliveryFailures).toBe(0);
    sim.delivered(false, "503");
    expect(sim.state.phase).toBe("executing");
  });

  const ignored = [
    { name: "another id", over: { actionId: "egress-gw:7" } },
    { name: "an old epoch", over: { actionId: "egress-gw:0" } },
    { name: "another target", over: { target: "bootstrap-dns" } },
  ];
  for (const c of ignored) {
    it(`ignores and audits a report for ${c.name}`, () => {
      const sim = executing();
      sim.report("succeeded", c.over);
      expect(sim.state.phase).toBe("executing");
      expect(sim.state.activeSide).toBe("primary");
      expect(sim.types().at(-1)).toBe("report.ignored");
    });
  }

  it("ignores a duplicate succeeded report after the action finished", () => {
    const sim = executing();
    sim.report("succeeded");
    sim.report("succeeded");
    expect(sim.types().at(-1)).toBe("report.ignored");
    expect(sim.types().filter((t) => t === "action.succeeded")).toHaveLength(1);
  });

  it("a late succeeded report after a timeout still records the switch", () => {
    const sim = executing({ dispatchRetries: 0 });
    sim.advance(600);
    expect(sim.state.phase).toBe("failed");
    sim.report("succeeded");
    expect(sim.state).toMatchObject({ phase: "steady", activeSide: "secondary" });
    // Rule 13: the agent's word wins, audited as a reconciliation.
    expect(sim.types()).toContain("action.reconciled");
  });

  it("epochs increase per action", () => {
    const sim = executing();
    sim.report("succeeded");
    sim.observe({});
    sim.command("failback");
    expect(sim.ids()).toEqual(["egress-gw:1", "egress-gw:2"]);
    expect(sim.state.epoch).toBe(2);
  });

  it("cancel while executing is rejected with the action id (the agent cannot stop mid-action)", () => {
    const sim = executing();
    expect(sim.command("cancel").rejected).toMatch(/^cancel: target is executing egress-gw:1/);
    expect(sim.command("failback").rejected).toBe("failback: target is executing egress-gw:1");
  });

  it("cancel from failed returns to steady without acting again for this incident", () => {
    const sim = executing();
    sim.report("failed");
    expect(sim.command("cancel").rejected).toBeUndefined();
    expect(sim.state.phase).toBe("steady");
    sim.advance(3600);
    expect(sim.ids()).toEqual(["egress-gw:1"]);
  });
});
