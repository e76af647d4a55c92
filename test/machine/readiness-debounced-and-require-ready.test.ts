/**
 * Readiness as an input of decide() (design §11.3): two evaluations in a row must agree before
 * the target says "not ready" or "ready again", once each; with `policy.requireReady` the
 * destination's readiness at the start of the hold blocks the automatic failover (`not-ready`),
 * unknown readiness (none, or older than its validUntil) never does, and a manual command goes.
 */
import { describe, expect, it } from "vitest";
import type { MachineInput } from "../../worker/engine/machine-types.ts";
import { Sim } from "./sim.ts";

const INTERVAL_MS = 300_000;

/** One evaluation toward `side` at the sim's now, valid for two intervals. */
function evaluation(
  sim: Sim,
  state: "ready" | "not-ready",
  extra: Partial<Extract<MachineInput, { type: "readiness" }>> = {},
): MachineInput {
  return {
    type: "readiness",
    side: "secondary",
    state,
    at: sim.now,
    validUntil: sim.now + 2 * INTERVAL_MS,
    failing: state === "ready" ? [] : ["permissions"],
    ...extra,
  };
}

const readinessNotes = (sim: Sim) => sim.notes.filter((n) => /ready/.test(n) && !/→/.test(n));

describe("readiness: said once per change, after two evaluations agree", () => {
  it("one failing evaluation says nothing; the second says not ready; the first passing one after says nothing; the second says ready again", () => {
    const sim = new Sim();
    sim.feed(evaluation(sim, "ready"));
    sim.advance(300).feed(evaluation(sim, "ready"));
    expect(sim.types()).not.toContain("readiness.lost");
    sim.advance(300).feed(evaluation(sim, "not-ready"));
    expect(sim.types()).not.toContain("readiness.lost");
    sim.advance(300).feed(evaluation(sim, "not-ready"));
    expect(sim.types().filter((t) => t === "readiness.lost")).toHaveLength(1);
    expect(readinessNotes(sim)).toEqual([
      "egress-gw: not ready to fail over to secondary: permissions failing (two evaluations in a row)",
    ]);
    // More of the same says nothing again.
    sim.advance(300).feed(evaluation(sim, "not-ready"));
    sim.advance(300).feed(evaluation(sim, "ready"));
    expect(sim.types()).not.toContain("readiness.regained");
    sim.advance(300).feed(evaluation(sim, "ready"));
    sim.advance(300).feed(evaluation(sim, "ready"));
    expect(sim.types().filter((t) => t === "readiness.lost")).toHaveLength(1);
    expect(sim.types().filter((t) => t === "readiness.regained")).toHaveLength(1);
    expect(readinessNotes(sim)).toHaveLength(2);
    expect(readinessNotes(sim)[1]).toBe("egress-gw: ready again to fail over to secondary");
  });

  it("a flapping check (not-ready, ready, not-ready, ready) never notifies", () => {
    const sim = new Sim();
    for (const state of ["not-ready", "ready", "not-ready", "ready", "not-ready"] as const) {
      sim.advance(300).feed(evaluation(sim, state));
    }
    expect(readinessNotes(sim)).toEqual([]);
  });

  it("ignores an evaluation that is not newer than the stored one (a replayed heartbeat)", () => {
    const sim = new Sim();
    const first = evaluation(sim, "not-ready");
    sim.feed(first);
    sim.feed(first);
    expect(sim.types()).not.toContain("readiness.lost");
    expect(sim.state.readiness?.secondary?.previous).toBeNull();
  });

  it("readiness of the active side is kept but never announced; drift of the active side is said once, never acted on", () => {
    const sim = new Sim();
    sim.feed(evaluation(sim, "not-ready", { side: "primary" }));
    sim.advance(300).feed(evaluation(sim, "not-ready", { side: "primary" }));
    expect(sim.types()).not.toContain("readiness.lost");
    const drift = { ok: false, detail: "StaticRoute primary: spec.gateway is 10.0.0.9, the config says 10.116.0.4" };
    sim.advance(300).feed(evaluation(sim, "ready", { drift }));
    sim.advance(300).feed(evaluation(sim, "ready", { drift }));
    sim.advance(300).feed(evaluation(sim, "ready", { drift }));
    expect(sim.types().filter((t) => t === "readiness.drift")).toHaveLength(1);
    expect(sim.dispatches).toEqual([]);
    sim.advance(300).feed(evaluation(sim, "ready", { drift: { ok: true, detail: "" } }));
    sim.advance(300).feed(evaluation(sim, "ready", { drift: { ok: true, detail: "" } }));
    const drifts = sim.events.filter((e) => e.type === "readiness.drift").map((e) => e.detail.drifted);
    expect(drifts).toEqual([true, false]);
  });
});

describe("policy.requireReady: no automatic failover into a side not ready at the start of the hold", () => {
  it("blocks not-ready, shown as every blocker is; a manual failover still goes, with a warning", () => {
    const sim = new Sim({ policy: { holdSeconds: 30, requireReady: true } });
    sim.feed(evaluation(sim, "not-ready"));
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(30);
    expect(sim.state.blocked).toBe("not-ready");
    expect(sim.dispatches).toEqual([]);
    const blocked = sim.events.find((e) => e.type === "failover.blocked");
    expect(blocked?.detail.blocker).toBe("not-ready");
    expect(
      sim.notes.some((n) => n.includes("secondary was not ready when the hold started (permissions failing")),
    ).toBe(true);
    // Ready again during the hold changes nothing: it is the hold's start that counts.
    sim.advance(10).feed(evaluation(sim, "ready"));
    sim.advance(600);
    expect(sim.dispatches).toEqual([]);
    const manual = sim.command("failover", { actor: "alice" });
    expect(manual.rejected).toBeUndefined();
    expect(sim.dispatches.map((d) => d.to)).toEqual(["secondary"]);
  });

  it("warns a manual failover into a side that is not ready now", () => {
    const sim = new Sim({ policy: { requireReady: true } });
    sim.feed(evaluation(sim, "not-ready"));
    const manual = sim.command("failover", { actor: "alice" });
    expect(manual.warnings).toEqual(["secondary is not ready (permissions failing); the action is dispatched anyway"]);
    expect(sim.dispatches).toHaveLength(1);
  });

  it("without requireReady, not-ready blocks nothing", () => {
    const sim = new Sim({ policy: { holdSeconds: 30 } });
    sim.feed(evaluation(sim, "not-ready"));
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(30);
    expect(sim.dispatches.map((d) => d.to)).toEqual(["secondary"]);
  });

  it("readiness missing is unknown and blocks nothing", () => {
    const sim = new Sim({ policy: { holdSeconds: 30, requireReady: true } });
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(30);
    expect(sim.state.holdReadiness?.state).toBe("unknown");
    expect(sim.dispatches.map((d) => d.to)).toEqual(["secondary"]);
  });

  it("readiness older than two intervals at the start of the hold is unknown and blocks nothing", () => {
    const sim = new Sim({ policy: { holdSeconds: 30, requireReady: true } });
    sim.feed(evaluation(sim, "not-ready"));
    sim.advance(600);
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(30);
    expect(sim.state.holdReadiness?.state).toBe("unknown");
    expect(sim.dispatches.map((d) => d.to)).toEqual(["secondary"]);
    expect(sim.types()).not.toContain("readiness.lost");
  });
});
