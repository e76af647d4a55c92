import { describe, expect, it } from "vitest";
import { Sim } from "./sim.ts";

/** Toggles the active side down/up `n` times, `gap` seconds apart. */
function toggle(sim: Sim, n: number, gap: number): void {
  for (let i = 0; i < n; i++) {
    sim.observe(i % 2 === 0 ? { primary: ["alertmanager"] } : {});
    sim.advance(gap);
  }
}

// Rule 4: more than flap.maxTransitions up/down changes of the active side within
// flap.windowSeconds latches flapping; no automatic action until stable for a whole window.
describe("rule 4: flapping", () => {
  const cases = [
    { transitions: 4, latched: false },
    { transitions: 5, latched: true },
  ];
  for (const c of cases) {
    it(`${c.transitions} changes within the window ${c.latched ? "latch" : "do not latch"} (max 4)`, () => {
      const sim = new Sim({ policy: { flap: { windowSeconds: 600, maxTransitions: 4 } } });
      toggle(sim, c.transitions, 10);
      expect(sim.state.flapping).toBe(c.latched);
      expect(sim.types().includes("flapping.latched")).toBe(c.latched);
    });
  }

  it("changes spread wider than the window do not latch", () => {
    const sim = new Sim({ policy: { flap: { windowSeconds: 600, maxTransitions: 4 } } });
    toggle(sim, 10, 200);
    expect(sim.state.flapping).toBe(false);
  });

  it("holds automatic failover while latched, releases after a stable window, then acts", () => {
    const sim = new Sim({ policy: { flap: { windowSeconds: 600, maxTransitions: 4 } } });
    toggle(sim, 5, 5); // ends down (5th change)
    expect(sim.state.flapping).toBe(true);
    sim.advance(300);
    expect(sim.state.blocked).toBe("flapping");
    expect(sim.dispatches).toHaveLength(0);
    // Stable (down) for a whole window after the last change: released, and the failover proceeds.
    sim.advance(300);
    expect(sim.types()).toContain("flapping.released");
    expect(sim.state.flapping).toBe(false);
    expect(sim.dispatches).toHaveLength(1);
  });

  it("a change during the window restarts the stability clock", () => {
    const sim = new Sim({ policy: { flap: { windowSeconds: 600, maxTransitions: 4 } } });
    toggle(sim, 6, 5); // ends up
    const last = sim.now - 5000;
    sim.advance(500);
    expect(sim.state.flapping).toBe(true);
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(599);
    expect(sim.state.flapping).toBe(true);
    sim.advance(1);
    expect(sim.state.flapping).toBe(false);
    expect(sim.now).toBeGreaterThan(last + 600_000);
  });

  it("manual commands still work while flapping", () => {
    const sim = new Sim();
    toggle(sim, 5, 5);
    expect(sim.state.flapping).toBe(true);
    expect(sim.command("failover", { actor: "U1" }).rejected).toBeUndefined();
    expect(sim.dispatches).toHaveLength(1);
  });

  it("changes of the passive side do not count", () => {
    const sim = new Sim();
    for (let i = 0; i < 10; i++) {
      sim.observe(i % 2 === 0 ? { secondary: ["alertmanager"] } : {});
      sim.advance(5);
    }
    expect(sim.state.flapping).toBe(false);
  });
});
