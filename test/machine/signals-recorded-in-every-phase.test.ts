import { describe, expect, it } from "vitest";
import { Sim } from "./sim.ts";

// Rule 8: signals keep being recorded in every phase; nothing is lost while paused or executing.
describe("rule 8: signals are recorded in every phase", () => {
  const phases = [
    { name: "steady", setup: () => undefined },
    { name: "paused", setup: (sim: Sim) => sim.command("pause") },
    { name: "executing", setup: (sim: Sim) => sim.command("failover") },
    {
      name: "failed",
      setup: (sim: Sim) => {
        sim.command("failover");
        sim.report("failed");
      },
    },
    {
      name: "awaiting_approval",
      setup: (sim: Sim) => {
        sim.observe({ primary: ["alertmanager"] });
        sim.advance(30);
      },
      policy: { approval: "required" as const },
    },
  ];
  for (const c of phases) {
    it(`records a side change while ${c.name}`, () => {
      const sim = new Sim({ policy: c.policy ?? {} });
      c.setup(sim);
      const n = sim.events.length;
      sim.observe({ primary: ["alertmanager"], secondary: ["nagios"] });
      expect(sim.state.sides.secondary).toMatchObject({ health: "down", firingSources: ["nagios"], since: sim.now });
      const side = sim.events.slice(n).find((e) => e.type === "side.health-changed" && e.detail.side === "secondary");
      expect(side?.cause).toBe(sim.events[n]?.seq);
    });
  }

  it("a failure observed while executing is acted on once the action ends", () => {
    const sim = new Sim();
    sim.command("failover");
    sim.observe({ secondary: ["alertmanager"] });
    sim.advance(60);
    expect(sim.state.phase).toBe("executing");
    sim.report("succeeded");
    // secondary is now active and down: pending, then (primary up) an automatic failover after
    // the hold, unless cooldown blocks it — it does (cooldown starts at the switch).
    expect(sim.state.phase).toBe("pending");
    sim.advance(30);
    expect(sim.state.blocked).toBe("cooldown");
    sim.advance(600);
    expect(sim.dispatches.at(-1)).toMatchObject({ from: "secondary", to: "primary" });
  });

  it("signals while paused are acted on after resume, after a fresh hold (rule 14)", () => {
    const sim = new Sim();
    sim.command("pause");
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(3600);
    expect(sim.ids()).toEqual([]);
    sim.command("resume");
    expect(sim.ids()).toEqual([]);
    sim.advance(29);
    expect(sim.ids()).toEqual([]);
    sim.advance(1);
    expect(sim.ids()).toEqual(["egress-gw:1"]);
  });
});
