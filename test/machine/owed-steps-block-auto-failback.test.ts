/**
 * Design §11.6: a plan step skipped by `ifUnreachable: "skip"` is owed; the target keeps it from
 * the report until a later report of the same action says it ran, and an automatic failback waits
 * for it (blocker `owed-steps`) while a manual failback still goes.
 */
import { describe, expect, it } from "vitest";
import { machineView } from "../../worker/engine/machine.ts";
import { Sim, TARGET } from "./sim.ts";

const owedStep = {
  name: "scale-old-primary",
  status: "skipped" as const,
  owed: true,
  detail: "owed: cluster old-primary does not answer; the step runs once it answers",
};
const doneStep = { name: "scale-old-primary", status: "succeeded" as const, detail: "owed since …, done at …" };

/** Primary fails; the failover succeeds with one step owed; primary is up again at once. */
function failedOverOwing(): { sim: Sim; id: string; switched: number } {
  const sim = new Sim({ policy: { failback: "auto", cooldownSeconds: 600, failbackAfterSeconds: 300 } });
  sim.observe({ primary: ["alertmanager"] });
  sim.advance(30);
  const id = sim.state.action?.id ?? "";
  sim.report("succeeded", { steps: [{ name: "shift", status: "succeeded" }, owedStep] });
  expect(sim.state.activeSide).toBe("secondary");
  sim.observe({});
  return { sim, id, switched: sim.now };
}

describe("owed plan steps", () => {
  it("are kept from the report and shown in the view", () => {
    const { sim, id, switched } = failedOverOwing();
    expect(sim.state.owed).toEqual([
      { action: id, step: "scale-old-primary", since: switched, agent: "default", detail: owedStep.detail },
    ]);
    expect(sim.events.filter((e) => e.type === "step.owed").map((e) => e.detail)).toEqual([
      { id, step: "scale-old-primary", detail: owedStep.detail },
    ]);
    expect(machineView(sim.state, sim.now).owed).toEqual([
      { action: id, step: "scale-old-primary", since: new Date(switched).toISOString(), detail: owedStep.detail },
    ]);
  });

  it("block an automatic failback until a later report says the step ran; then it goes at once", () => {
    const { sim, id, switched } = failedOverOwing();
    sim.advance(3600);
    expect(sim.dispatches.map((d) => d.kind)).toEqual(["failover"]);
    expect(sim.state.blocked).toBe("owed-steps");
    expect(machineView(sim.state, sim.now).blocked).toBe("owed-steps");
    const blocked = sim.events.filter((e) => e.type === "failback.blocked");
    expect(blocked).toHaveLength(1); // said once, not at every timer
    expect(blocked[0]?.at).toBe(switched + 600_000); // when the failback would have gone (cooldown)
    expect(blocked[0]?.detail).toMatchObject({ blocker: "owed-steps", steps: ["scale-old-primary"] });

    // The agent's re-sent report of the same action: the owed step ran.
    sim.report("succeeded", { actionId: id, steps: [{ name: "shift", status: "succeeded" }, doneStep] });
    expect(sim.state.owed).toEqual([]);
    expect(sim.events.some((e) => e.type === "step.owed-done" && e.detail.step === "scale-old-primary")).toBe(true);
    expect(sim.dispatches.map((d) => [d.kind, d.to])).toEqual([
      ["failover", "secondary"],
      ["failback", "primary"],
    ]);
    expect(sim.events.findLast((e) => e.type === "action.dispatched")?.detail).toMatchObject({
      kind: "failback",
      trigger: "automatic",
    });
  });

  it("a report still saying owed keeps the block", () => {
    const { sim, id } = failedOverOwing();
    sim.advance(3600);
    sim.report("succeeded", { actionId: id, steps: [{ name: "shift", status: "succeeded" }, owedStep] });
    sim.advance(3600);
    expect(sim.dispatches).toHaveLength(1);
    expect(sim.state.owed).toHaveLength(1);
  });

  it("a manual failback still goes, and the step stays owed by the earlier action until its report", () => {
    const { sim, id } = failedOverOwing();
    sim.advance(3600);
    expect(sim.command("failback", { actor: "U1" }).rejected).toBeUndefined();
    expect(sim.dispatches.map((d) => d.kind)).toEqual(["failover", "failback"]);
    sim.report("succeeded");
    expect(sim.state.activeSide).toBe("primary");
    expect(sim.state.owed?.map((o) => o.action)).toEqual([id]);
    // The earlier action's report, signed by another agent, settles nothing; by its own agent it does.
    const late = { actionId: id, steps: [doneStep] };
    sim.feed({
      type: "report",
      agent: "other",
      report: { ...late, target: TARGET, status: "succeeded", dryRun: false, at: new Date(sim.now).toISOString() },
    });
    expect(sim.state.owed).toHaveLength(1);
    sim.feed({
      type: "report",
      agent: "default",
      report: { ...late, target: TARGET, status: "succeeded", dryRun: false, at: new Date(sim.now).toISOString() },
    });
    expect(sim.state.owed).toEqual([]);
  });

  it("an owed-steps block is not carried into a hold that starts after it", () => {
    const { sim } = failedOverOwing();
    sim.advance(3600);
    expect(sim.state.blocked).toBe("owed-steps");
    sim.observe({ secondary: ["alertmanager"] });
    expect(sim.state.phase).toBe("pending");
    expect(sim.state.blocked).toBeNull();
  });
});
