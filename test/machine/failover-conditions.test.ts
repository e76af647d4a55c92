import { describe, expect, it } from "vitest";
import { Sim, T0 } from "./sim.ts";

const HOUR = 3600;

/** Fails over once (automatic) and reports success, so the target sits in cooldown on secondary. */
function failedOverOnce(sim: Sim): void {
  sim.observe({ primary: ["alertmanager"] });
  sim.advance(30);
  sim.report("succeeded");
  expect(sim.state.activeSide).toBe("secondary");
}

// Rule 3: failover fires when the active side has been down for holdSeconds, the other side is up,
// and the target is not paused, not flapping, not in cooldown, with daily budget left.
describe("rule 3: failover conditions", () => {
  const blockers = [
    {
      name: "paused",
      setup: (sim: Sim) => sim.command("pause"),
      expected: "paused",
      // Rule 14: resume starts the hold anew.
      unblock: (sim: Sim) => {
        sim.command("resume");
        sim.advance(30);
      },
    },
    {
      name: "cooldown after a previous switch",
      setup: (sim: Sim) => {
        failedOverOnce(sim);
        sim.observe({});
      },
      expected: "cooldown",
      unblock: (sim: Sim) => sim.advance(600),
    },
  ];
  for (const b of blockers) {
    it(`is blocked while ${b.name} and proceeds once that ends`, () => {
      const sim = new Sim({ policy: { cooldownSeconds: 600, maxAutoActionsPerDay: 5 } });
      b.setup(sim);
      const before = sim.dispatches.length;
      const active = sim.state.activeSide;
      sim.observe(active === "primary" ? { primary: ["alertmanager"] } : { secondary: ["alertmanager"] });
      sim.advance(31);
      expect(sim.state.phase).toBe("pending");
      expect(sim.state.blocked).toBe(b.expected);
      expect(sim.dispatches.length).toBe(before);
      expect(sim.types()).toContain("failover.blocked");
      b.unblock(sim);
      expect(sim.dispatches.length).toBe(before + 1);
      expect(sim.state.phase).toBe("executing");
    });
  }

  it("spends the daily budget and waits until a slot leaves the 24 h window", () => {
    const sim = new Sim({ policy: { maxAutoActionsPerDay: 2, cooldownSeconds: 60 } });
    failedOverOnce(sim); // 1: primary → secondary
    sim.advance(120);
    sim.observe({ secondary: ["alertmanager"] });
    sim.advance(30);
    sim.report("succeeded"); // 2: secondary → primary
    expect(sim.state.activeSide).toBe("primary");
    sim.advance(120);
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(HOUR);
    expect(sim.dispatches).toHaveLength(2);
    expect(sim.state.blocked).toBe("budget");
    // The first action was at T0 + 30 s; its slot frees 24 h later, armed by the timer.
    sim.advance(24 * HOUR);
    expect(sim.ids()).toEqual(["egress-gw:1", "egress-gw:2", "egress-gw:3"]);
    const third = sim.events.find((e) => e.type === "action.dispatched" && e.detail.id === "egress-gw:3");
    expect(third?.at).toBe(T0 + 30_000 + 24 * HOUR * 1000);
  });

  it("a zero budget never acts automatically", () => {
    const sim = new Sim({ policy: { maxAutoActionsPerDay: 0 } });
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(48 * HOUR);
    expect(sim.dispatches).toHaveLength(0);
    expect(sim.state.blocked).toBe("budget");
  });

  describe("approval: required", () => {
    it("waits in awaiting_approval, and approve dispatches", () => {
      const sim = new Sim({ policy: { approval: "required" } });
      sim.observe({ primary: ["alertmanager"] });
      sim.advance(30);
      expect(sim.state.phase).toBe("awaiting_approval");
      expect(sim.dispatches).toHaveLength(0);
      expect(sim.types()).toContain("approval.requested");
      sim.advance(100);
      const d = sim.command("approve", { actor: "U1" });
      expect(d.rejected).toBeUndefined();
      expect(sim.dispatches[0]).toMatchObject({ kind: "failover", to: "secondary" });
      expect(sim.state.action?.trigger).toBe("approved");
    });

    it("expires back to steady with a notification after approvalTimeoutSeconds, and does not re-ask for the same incident", () => {
      const sim = new Sim({ policy: { approval: "required", approvalTimeoutSeconds: 900 } });
      sim.observe({ primary: ["alertmanager"] });
      sim.advance(30 + 899);
      expect(sim.state.phase).toBe("awaiting_approval");
      sim.advance(1);
      expect(sim.state.phase).toBe("steady");
      expect(sim.types()).toContain("approval.expired");
      expect(sim.notes.some((n) => n.includes("expired"))).toBe(true);
      sim.advance(HOUR);
      expect(sim.types().filter((t) => t === "approval.requested")).toHaveLength(1);
      // A new incident (recover, then down again) asks again.
      sim.observe({});
      sim.observe({ primary: ["nagios"] });
      sim.advance(30);
      expect(sim.types().filter((t) => t === "approval.requested")).toHaveLength(2);
    });

    it("an approve that arrives after the deadline, before the late alarm ran, finds the request expired", () => {
      const sim = new Sim({ policy: { approval: "required", approvalTimeoutSeconds: 900 } });
      sim.observe({ primary: ["alertmanager"] });
      sim.advance(30);
      expect(sim.state.phase).toBe("awaiting_approval");
      // The alarm is late: the clock passes the deadline without a timer input.
      sim.now += 901_000;
      const d = sim.command("approve", { actor: "U1" });
      expect(d.rejected).toBe("approve: nothing awaits approval (phase steady)");
      expect(sim.dispatches).toHaveLength(0);
      expect(sim.types().slice(-3)).toEqual(["approval.expired", "phase.changed", "command.rejected"]);
    });

    it("approve outside awaiting_approval is rejected", () => {
      const sim = new Sim({ policy: { approval: "required" } });
      expect(sim.command("approve").rejected).toBe("approve: nothing awaits approval (phase steady)");
    });

    it("the request is withdrawn when the active side recovers", () => {
      const sim = new Sim({ policy: { approval: "required" } });
      sim.observe({ primary: ["alertmanager"] });
      sim.advance(30);
      sim.observe({});
      expect(sim.state.phase).toBe("steady");
      expect(sim.state.approval).toBeNull();
    });
  });

  it("cancel during pending drops this incident; the next incident acts again", () => {
    const sim = new Sim();
    sim.observe({ primary: ["alertmanager"] });
    expect(sim.command("cancel", { actor: "U1" }).rejected).toBeUndefined();
    sim.advance(HOUR);
    expect(sim.dispatches).toHaveLength(0);
    sim.observe({});
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(30);
    expect(sim.dispatches).toHaveLength(1);
  });
});
