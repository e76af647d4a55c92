import { describe, expect, it } from "vitest";
import { Sim } from "./sim.ts";

// Rule 9 and design §5b: a drill dispatches a dryRun action and never changes activeSide; a live
// drill fails over, holds, fails back and records each switch's recovery time.
describe("rule 9: drills", () => {
  it("a dry-run drill dispatches kind drill with dryRun and never changes the active side", () => {
    const sim = new Sim({ drill: { cron: "0 3 * * 1" } });
    expect(sim.command("drill", { actor: "cron" }).rejected).toBeUndefined();
    expect(sim.dispatches[0]).toMatchObject({ kind: "drill", dryRun: true, from: "primary", to: "secondary" });
    sim.advance(7);
    sim.report("succeeded", {
      steps: [
        {
          name: "preflight",
          status: "succeeded",
          startedAt: "2026-11-22T10:00:00.000Z",
          finishedAt: "2026-11-22T10:00:02.500Z",
        },
      ],
    });
    expect(sim.state).toMatchObject({ activeSide: "primary", phase: "steady", cooldownUntil: null, drill: null });
    const done = sim.events.find((e) => e.type === "drill.completed");
    expect(done?.detail).toMatchObject({ mode: "dry-run", ok: true });
    expect(sim.state.lastDrill?.switches[0]).toMatchObject({
      recoveryMs: 7000,
      steps: [{ name: "preflight", durationMs: 2500 }],
    });
    expect(sim.notes.some((n) => n.includes("dry-run drill completed"))).toBe(true);
  });

  it("a failed dry run is reported but does not leave the target in failed", () => {
    const sim = new Sim();
    sim.command("drill");
    sim.report("failed", { error: { code: "preflight", message: "route invalid" } });
    expect(sim.state.phase).toBe("steady");
    expect(sim.state.lastDrill).toMatchObject({ ok: false, outcome: "failed" });
    expect(sim.state.activeSide).toBe("primary");
  });

  it("a live drill fails over, holds, fails back and records both recovery times", () => {
    const sim = new Sim({ drill: { cron: "0 3 * * 1", mode: "live", holdSeconds: 120 } });
    sim.command("drill", { actor: "cron" });
    expect(sim.dispatches[0]).toMatchObject({ kind: "failover", dryRun: false, to: "secondary" });
    sim.advance(9);
    sim.report("succeeded");
    expect(sim.state.activeSide).toBe("secondary");
    expect(sim.state.cooldownUntil).toBeNull();
    sim.advance(119);
    expect(sim.ids()).toHaveLength(1);
    sim.advance(1);
    expect(sim.dispatches.at(-1)).toMatchObject({ kind: "failback", to: "primary", id: "egress-gw:2" });
    sim.advance(11);
    sim.report("succeeded");
    expect(sim.state).toMatchObject({ activeSide: "primary", phase: "steady", drill: null });
    expect(sim.state.lastDrill).toMatchObject({ mode: "live", ok: true, outcome: "completed" });
    expect(sim.state.lastDrill?.switches.map((s) => s.recoveryMs)).toEqual([9000, 11000]);
    expect(sim.state.autoActions).toEqual([]);
  });

  it("a real signal during the live drill's hold aborts it and normal policy takes over", () => {
    const sim = new Sim({ drill: { cron: "0 3 * * 1", mode: "live", holdSeconds: 600 } });
    sim.command("drill");
    sim.report("succeeded");
    sim.advance(60);
    sim.observe({ secondary: ["alertmanager"] });
    expect(sim.state.drill).toBeNull();
    expect(sim.types()).toContain("drill.aborted");
    // Normal policy: secondary (active) is down → hold → failover back to primary.
    expect(sim.state.phase).toBe("pending");
    sim.advance(30);
    expect(sim.dispatches.at(-1)).toMatchObject({ kind: "failover", to: "primary" });
    expect(sim.state.action?.trigger).toBe("automatic");
  });

  const refusals = [
    {
      name: "not steady",
      setup: (sim: Sim) => sim.command("failover"),
      reason: "drill: target is executing egress-gw:1",
    },
    { name: "paused (live)", setup: (sim: Sim) => sim.command("pause"), reason: "drill: target is paused", live: true },
    {
      name: "a side not up (live)",
      setup: (sim: Sim) => sim.observe({ secondary: ["nagios"] }),
      reason: "drill: secondary is down",
      live: true,
    },
  ];
  for (const c of refusals) {
    it(`is refused when ${c.name}`, () => {
      const sim = new Sim({ drill: { cron: "0 3 * * 1", mode: c.live ? "live" : "dry-run" } });
      c.setup(sim);
      expect(sim.command("drill").rejected).toBe(c.reason);
    });
  }

  it("a live drill is refused during cooldown", () => {
    const sim = new Sim({ drill: { cron: "0 3 * * 1", mode: "live" } });
    sim.command("failover");
    sim.report("succeeded");
    expect(sim.command("drill").rejected).toBe("drill: target is in cooldown");
  });
  const stoppers = [
    { name: "cancel", stop: (sim: Sim) => sim.command("cancel", { actor: "U1" }) },
    { name: "pause", stop: (sim: Sim) => sim.command("pause", { actor: "U1" }) },
  ];
  for (const c of stoppers) {
    it(`${c.name} during the live drill's hold ends the drill and stays on the drilled side`, () => {
      const sim = new Sim({ drill: { cron: "0 3 * * 1", mode: "live", holdSeconds: 60 } });
      sim.command("drill");
      sim.report("succeeded");
      expect(c.stop(sim).rejected).toBeUndefined();
      expect(sim.state.drill).toBeNull();
      expect(sim.state.lastDrill).toMatchObject({ outcome: "aborted", ok: false });
      sim.advance(3600);
      expect(sim.ids()).toEqual(["egress-gw:1"]);
      expect(sim.state.activeSide).toBe("secondary");
    });
  }

  it("rule 11: a real signal during a dry run abandons it, and normal policy acts without waiting for it", () => {
    const sim = new Sim();
    sim.command("drill");
    sim.observe({ primary: ["alertmanager"] });
    expect(sim.types()).toContain("drill.aborted");
    expect(sim.types()).toContain("action.abandoned");
    expect(sim.state.phase).toBe("pending");
    sim.advance(30);
    expect(sim.dispatches.at(-1)).toMatchObject({ kind: "failover", dryRun: false, id: "egress-gw:2" });
    // The abandoned dry run's report changes nothing.
    sim.feed({
      type: "report",
      report: {
        actionId: "egress-gw:1",
        target: "egress-gw",
        status: "succeeded",
        dryRun: true,
        steps: [],
        at: new Date(sim.now).toISOString(),
      },
    });
    expect(sim.state).toMatchObject({ phase: "executing", activeSide: "primary" });
  });
});
