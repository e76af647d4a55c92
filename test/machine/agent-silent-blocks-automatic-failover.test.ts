/**
 * Rule 17 (design §11.1, §11.6): agent liveness is an input of decide() with its time. No
 * automatic action goes into a side whose agent is silent: before blocking, the machine probes
 * that agent once; an answer counts as heard and the failover goes at once. Blocked, the hold is
 * not restarted when the agent is heard again. A manual command still goes, with a warning, and
 * without `force`.
 */
import { describe, expect, it } from "vitest";
import { PolicySchema } from "../../shared/config.ts";
import { initialState } from "../../worker/engine/machine.ts";
import type { Effect } from "../../worker/engine/machine-types.ts";
import { Sim, T0, TARGET } from "./sim.ts";

/** A Sim whose sides are served by agent-a (primary) and agent-b (secondary). */
function twoAgents(policy = {}): Sim {
  const sim = new Sim({ policy: { holdSeconds: 30, ...policy } });
  sim.state = initialState(TARGET, {
    policy: PolicySchema.parse({ holdSeconds: 30, ...policy }),
    initialActiveSide: "primary",
    sides: { primary: { matchers: ['a="1"'], agent: "agent-a" }, secondary: { matchers: ['a="2"'], agent: "agent-b" } },
  });
  return sim;
}

const probes = (effects: readonly Effect[]) => effects.filter((e) => e.type === "probe");

describe("rule 17: never automatically into a silent agent", () => {
  it("probes the silent agent once before blocking, and blocks agent-silent when it does not answer", async () => {
    const sim = twoAgents();
    sim.feed({ type: "agent", agent: "agent-b", silent: true, at: T0, lastHeardAt: T0 - 60_000 });
    sim.observe({ primary: ["alertmanager"] });
    const due = sim.advance(30).last;
    expect(probes(due?.effects ?? [])).toEqual([{ type: "probe", agent: "agent-b" }]);
    expect(sim.state.blocked).toBeNull();
    sim.feed({ type: "probe-result", agent: "agent-b", ok: false });
    expect(sim.state.blocked).toBe("agent-silent");
    expect(sim.types()).toContain("failover.blocked");
    expect(sim.dispatches).toEqual([]);
    // Blocked: no second probe, nothing dispatched, however long it waits.
    sim.advance(600);
    expect(sim.dispatches).toEqual([]);
    expect(sim.types().filter((t) => t === "agent.probed")).toHaveLength(1);
  });

  it("blocks after the probe's wait when no answer is recorded at all (an evicted object)", () => {
    const sim = twoAgents();
    sim.feed({ type: "agent", agent: "agent-b", silent: true, at: T0 });
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(30);
    expect(sim.state.probe?.answered).toBeNull();
    sim.advance(15);
    expect(sim.state.blocked).toBe("agent-silent");
  });

  it("fails over at once when the probe is answered: an answer counts as heard", () => {
    const sim = twoAgents();
    sim.feed({ type: "agent", agent: "agent-b", silent: true, at: T0 });
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(30);
    sim.feed({ type: "probe-result", agent: "agent-b", ok: true });
    expect(sim.dispatches.map((d) => [d.to, d.agent])).toEqual([["secondary", "agent-b"]]);
    expect(sim.types()).toContain("agent.returned");
  });

  it("takes the blocked decision at once when the agent is heard again, without a new hold", () => {
    const sim = twoAgents();
    sim.feed({ type: "agent", agent: "agent-b", silent: true, at: T0 });
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(30);
    sim.feed({ type: "probe-result", agent: "agent-b", ok: false });
    sim.advance(300);
    expect(sim.dispatches).toEqual([]);
    const heardAt = sim.now;
    sim.feed({ type: "agent", agent: "agent-b", silent: false, at: heardAt });
    expect(sim.dispatches).toHaveLength(1);
    expect(sim.now).toBe(heardAt);
    expect(sim.dispatches[0]?.agent).toBe("agent-b");
  });

  it("ignores older liveness news than it holds (a late fan-out cannot undo a newer transition)", () => {
    const sim = twoAgents();
    sim.feed({ type: "agent", agent: "agent-b", silent: true, at: T0 + 10_000 });
    sim.feed({ type: "agent", agent: "agent-b", silent: false, at: T0 });
    expect(sim.state.agentLiveness["agent-b"]).toEqual({ silent: true, at: T0 + 10_000 });
    expect(sim.types().filter((t) => t === "agent.returned")).toEqual([]);
  });

  it("does not fail back automatically into a silent agent's side", () => {
    const sim = twoAgents({ failback: "auto", failbackAfterSeconds: 60, cooldownSeconds: 0 });
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(30);
    sim.report("succeeded");
    sim.observe({});
    sim.feed({ type: "agent", agent: "agent-a", silent: true, at: sim.now });
    sim.advance(3600);
    expect(sim.dispatches.map((d) => d.kind)).toEqual(["failover"]);
    sim.feed({ type: "agent", agent: "agent-a", silent: false, at: sim.now });
    expect(sim.dispatches.map((d) => [d.kind, d.agent])).toEqual([
      ["failover", "agent-b"],
      ["failback", "agent-a"],
    ]);
  });

  it("still sends a manual failover to a silent agent, with a warning and without force", () => {
    const sim = twoAgents();
    sim.feed({ type: "agent", agent: "agent-b", silent: true, at: T0 });
    const d = sim.command("failover");
    expect(d.rejected).toBeUndefined();
    expect(d.warnings).toEqual([expect.stringContaining("agent-b (secondary) is silent")]);
    expect(sim.dispatches.map((x) => [x.agent, x.force])).toEqual([["agent-b", false]]);
    expect(sim.events.find((e) => e.type === "action.dispatched")?.detail).toMatchObject({ agentSilent: true });
  });

  it("audits a silence on the target and notifies only when told to announce it", () => {
    const sim = twoAgents();
    sim.feed({ type: "agent", agent: "agent-b", silent: true, at: T0 });
    expect(sim.types()).toContain("agent.silent");
    expect(sim.notes).toEqual([]);
    sim.feed({ type: "agent", agent: "agent-b", silent: false, at: T0 + 1, announce: true });
    expect(sim.notes).toEqual([expect.stringContaining("agent-b is heard again")]);
  });
});
