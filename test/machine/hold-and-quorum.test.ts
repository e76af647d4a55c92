import { describe, expect, it } from "vitest";
import { Sim } from "./sim.ts";

// Rule 1: a side is down at `quorum` distinct sources, up when none fire; a down side must stay
// down for `holdSeconds` (phase pending) before anything happens.
describe("rule 1: hold and quorum", () => {
  const cases = [
    {
      name: "one source, quorum 1, stays down past the hold",
      quorum: 1,
      sources: ["alertmanager"],
      downFor: 31,
      acts: true,
    },
    { name: "one source, quorum 1, recovers at 29 s", quorum: 1, sources: ["alertmanager"], downFor: 29, acts: false },
    {
      name: "one source, quorum 2: below quorum, never pending",
      quorum: 2,
      sources: ["alertmanager"],
      downFor: 600,
      acts: false,
    },
    {
      name: "two sources, quorum 2, stays down",
      quorum: 2,
      sources: ["alertmanager", "nagios"],
      downFor: 31,
      acts: true,
    },
    { name: "duplicate source counts once", quorum: 2, sources: ["nagios", "nagios"], downFor: 600, acts: false },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const sim = new Sim({ policy: { holdSeconds: 30, quorum: c.quorum } });
      sim.observe({ primary: c.sources });
      const distinct = new Set(c.sources).size;
      expect(sim.state.phase).toBe(distinct >= c.quorum ? "pending" : "steady");
      expect(sim.state.sides.primary.health).toBe(distinct >= c.quorum ? "down" : "unknown");
      sim.advance(c.downFor);
      if (!c.acts) sim.observe({});
      sim.advance(60);
      expect(sim.dispatches.length).toBe(c.acts ? 1 : 0);
      if (c.acts) {
        expect(sim.dispatches[0]).toMatchObject({
          id: "egress-gw:1",
          kind: "failover",
          from: "primary",
          to: "secondary",
        });
        expect(sim.state.phase).toBe("executing");
      } else {
        expect(sim.state.phase).toBe("steady");
      }
    });
  }

  it("dispatches exactly at the end of the hold, armed by the timer", () => {
    const sim = new Sim({ policy: { holdSeconds: 30 } });
    sim.observe({ primary: ["alertmanager"] });
    expect(sim.timer).toBe(sim.now + 30_000);
    sim.advance(29.999);
    expect(sim.dispatches).toHaveLength(0);
    sim.advance(0.001);
    expect(sim.dispatches).toHaveLength(1);
  });

  it("recovery during the hold goes back to steady, audited", () => {
    const sim = new Sim();
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(10);
    sim.observe({});
    expect(sim.state.phase).toBe("steady");
    expect(sim.state.pendingSince).toBeNull();
    const last = sim.events.filter((e) => e.type === "phase.changed").at(-1);
    expect(last?.detail).toMatchObject({ from: "pending", to: "steady" });
  });

  it("held (Nagios flapping/downtime) sources never trigger automatic action", () => {
    const sim = new Sim();
    sim.observe({ heldPrimary: ["nagios"] });
    expect(sim.state.sides.primary.health).toBe("down");
    sim.advance(3600);
    expect(sim.state.phase).toBe("steady");
    expect(sim.dispatches).toHaveLength(0);
  });
});
