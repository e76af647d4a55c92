import { describe, expect, it } from "vitest";
import { Sim } from "./sim.ts";

// Design §5: every change appends an audit event whose cause is the seq of the event that caused
// it, so an incident reads as a chain: signal → pending → dispatched → report → steady.
describe("audit causal chain", () => {
  it("follows one failover from the signal to steady", () => {
    const sim = new Sim();
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(30);
    sim.report("succeeded");
    const bySeq = new Map(sim.events.map((e) => [e.seq, e]));
    const steady = sim.events.filter((e) => e.type === "phase.changed" && e.detail.to === "steady").at(-1);
    const chain: string[] = [];
    for (let e = steady; e; e = e.cause === undefined ? undefined : bySeq.get(e.cause)) {
      chain.unshift(e.type === "phase.changed" ? `phase:${String(e.detail.to)}` : e.type);
    }
    expect(chain).toEqual([
      "signal.received",
      "side.health-changed",
      "phase:pending",
      "phase:executing",
      "action.dispatched",
      "action.succeeded",
      "phase:steady",
    ]);
  });

  it("seqs are consecutive and every event after the first names an earlier cause", () => {
    const sim = new Sim();
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(30);
    sim.report("running");
    sim.report("succeeded");
    sim.command("pause");
    sim.command("pause");
    sim.events.forEach((e, i) => {
      expect(e.seq).toBe(i + 1);
      if (i > 0 && e.type !== "command.accepted" && e.type !== "command.rejected") {
        expect(e.cause).toBeLessThan(e.seq);
      }
    });
  });
});
