import { describe, expect, it } from "vitest";
import { PolicySchema } from "../../shared/config.ts";
import { decide, initialState, MachineStateSchema, machineView } from "../../worker/engine/machine.ts";
import { Sim, T0 } from "./sim.ts";

describe("config is an input, and the state is a validated contract", () => {
  it("the initial state validates and starts steady on the configured side", () => {
    const s = initialState("bootstrap-dns", { policy: PolicySchema.parse({}), initialActiveSide: "secondary" });
    expect(MachineStateSchema.parse(JSON.parse(JSON.stringify(s)))).toEqual(s);
    expect(s).toMatchObject({ activeSide: "secondary", homeSide: "secondary", phase: "steady", seq: 0, epoch: 0 });
  });

  it("re-sending the same config changes nothing and audits nothing", () => {
    const sim = new Sim();
    const before = sim.state;
    const d = sim.feed({ type: "config", policy: before.policy, initialActiveSide: "primary", drill: null });
    expect(d.state).toEqual(before);
    expect(d.effects).toEqual([{ type: "setTimer", at: null }]);
  });

  it("a quorum change re-evaluates health without a new signal, audited", () => {
    const sim = new Sim({ policy: { quorum: 2 } });
    sim.observe({ primary: ["alertmanager"] });
    expect(sim.state.sides.primary.health).toBe("unknown");
    sim.feed({ type: "config", policy: PolicySchema.parse({ quorum: 1 }), initialActiveSide: "primary" });
    expect(sim.types().slice(-3, -1)).toEqual(["config.changed", "side.health-changed"]);
    expect(sim.state).toMatchObject({ phase: "pending", policy: { quorum: 1 } });
  });

  it("a malformed input is refused by zod before anything happens", () => {
    const s = initialState("egress-gw", { policy: PolicySchema.parse({}), initialActiveSide: "primary" });
    expect(() => decide(s, { type: "command", command: "explode" } as never, T0)).toThrow(/command/);
  });

  it("the view shows what §3 needs and hides a passed cooldown", () => {
    const sim = new Sim({ policy: { cooldownSeconds: 60 } });
    sim.command("failover");
    sim.report("running", { steps: [{ name: "preflight", status: "running" }] });
    expect(machineView(sim.state, sim.now).action).toMatchObject({
      id: "egress-gw:1",
      status: "running",
      steps: [{ name: "preflight" }],
    });
    sim.report("succeeded");
    const v = machineView(sim.state, sim.now);
    expect(v).toMatchObject({
      activeSide: "secondary",
      phase: "steady",
      cooldownUntil: new Date(sim.now + 60_000).toISOString(),
    });
    expect(machineView(sim.state, sim.now + 60_000).cooldownUntil).toBeNull();
  });
});
