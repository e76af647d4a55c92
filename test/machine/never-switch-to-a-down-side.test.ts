import { describe, expect, it } from "vitest";
import { Sim } from "./sim.ts";

// Rule 2: never switch to a side that is down; both down → stay and notify "both sides down".
describe("rule 2: never switch to a down side", () => {
  it("both sides down: stays on the active side, audits and notifies once", () => {
    const sim = new Sim();
    sim.observe({ primary: ["alertmanager"], secondary: ["nagios"] });
    sim.advance(3600);
    expect(sim.dispatches).toHaveLength(0);
    expect(sim.state.activeSide).toBe("primary");
    expect(sim.state.phase).toBe("pending");
    expect(sim.state.blocked).toBe("both-sides-down");
    expect(sim.types().filter((t) => t === "both-sides-down")).toHaveLength(1);
    expect(sim.notes.filter((n) => n.includes("both sides down"))).toHaveLength(1);
  });

  it("fails over once the other side, back up after the hold, has been up for riseSeconds (rule 14)", () => {
    const sim = new Sim({ policy: { riseSeconds: 20 } });
    sim.observe({ primary: ["alertmanager"], secondary: ["nagios"] });
    sim.advance(120);
    sim.observe({ primary: ["alertmanager"] });
    expect(sim.dispatches).toHaveLength(0);
    expect(sim.state.blocked).toBe("other-side-rising");
    sim.advance(19);
    expect(sim.dispatches).toHaveLength(0);
    sim.advance(1);
    expect(sim.dispatches).toHaveLength(1);
    expect(sim.dispatches[0]?.to).toBe("secondary");
  });

  it("a side held by a Nagios notice counts as down for rule 2", () => {
    const sim = new Sim();
    sim.observe({ primary: ["alertmanager"], heldSecondary: ["nagios"] });
    sim.advance(60);
    expect(sim.dispatches).toHaveLength(0);
    expect(sim.state.blocked).toBe("both-sides-down");
  });

  it("a side with signals below quorum is not up: no automatic failover to it", () => {
    const sim = new Sim({ policy: { quorum: 2 } });
    sim.observe({ primary: ["alertmanager", "nagios"], secondary: ["nagios"] });
    sim.advance(60);
    expect(sim.dispatches).toHaveLength(0);
    expect(sim.state.blocked).toBe("other-side-not-up");
  });

  const manual = [
    { name: "manual failover to a down side is rejected", force: false, accepted: false },
    {
      name: "forced (break-glass) failover to a down side is dispatched and audited with the actor",
      force: true,
      accepted: true,
    },
  ];
  for (const c of manual) {
    it(c.name, () => {
      const sim = new Sim();
      sim.observe({ secondary: ["alertmanager"] });
      const d = sim.command("failover", { force: c.force, actor: "U123", reason: "dc fire" });
      if (c.accepted) {
        expect(d.rejected).toBeUndefined();
        expect(sim.dispatches[0]).toMatchObject({ to: "secondary", force: true });
        const forced = sim.events.find((e) => e.type === "command.forced");
        expect(forced?.detail).toMatchObject({ actor: "U123", to: "secondary" });
        expect(sim.notes.some((n) => n.includes("BREAK-GLASS"))).toBe(true);
      } else {
        expect(d.rejected).toBe("failover: secondary is down (never switch to a down side; force overrides)");
        expect(sim.dispatches).toHaveLength(0);
        expect(sim.types()).toContain("command.rejected");
      }
    });
  }
});
