import { describe, expect, it } from "vitest";
import { Sim } from "./sim.ts";

/** Primary fails, the target fails over to secondary, then primary recovers at the returned time. */
function onSecondary(policy: Record<string, unknown> = {}): Sim {
  const sim = new Sim({ policy: { cooldownSeconds: 600, failbackAfterSeconds: 300, ...policy } });
  sim.observe({ primary: ["alertmanager"] });
  sim.advance(30);
  sim.report("succeeded");
  expect(sim.state.activeSide).toBe("secondary");
  return sim;
}

// Rule 6: failback `auto` fails back once the original primary has been up for
// failbackAfterSeconds and cooldown has passed; `manual` waits for the command.
describe("rule 6: failback", () => {
  const cases = [
    { name: "auto: waits for cooldown when primary recovers at once", failback: "auto", upAfter: 0, expectAt: 600 },
    { name: "auto: waits for the soak when primary recovers late", failback: "auto", upAfter: 500, expectAt: 800 },
    { name: "manual: never fails back by itself", failback: "manual", upAfter: 0, expectAt: null },
  ] as const;
  for (const c of cases) {
    it(c.name, () => {
      const sim = onSecondary({ failback: c.failback });
      const switched = sim.now;
      sim.advance(c.upAfter);
      sim.observe({});
      sim.advance(48 * 3600);
      const fb = sim.events.find((e) => e.type === "action.dispatched" && e.detail.kind === "failback");
      if (c.expectAt === null) expect(fb).toBeUndefined();
      else {
        expect(fb?.at).toBe(switched + c.expectAt * 1000);
        expect(fb?.detail).toMatchObject({ to: "primary", trigger: "automatic" });
      }
    });
  }

  it("auto: after a manual failover while primary never had a signal, fails back when cooldown ends", () => {
    const sim = new Sim({ policy: { failback: "auto", cooldownSeconds: 600, failbackAfterSeconds: 300 } });
    expect(sim.command("failover", { actor: "U1" }).rejected).toBeUndefined();
    sim.report("succeeded");
    const switched = sim.now;
    expect(sim.state.activeSide).toBe("secondary");
    sim.advance(3600);
    const fb = sim.events.find((e) => e.type === "action.dispatched" && e.detail.kind === "failback");
    expect(fb?.at).toBe(switched + 600_000);
    expect(fb?.detail).toMatchObject({ to: "primary", trigger: "automatic" });
    // No health event to point at: the failback is caused by the failover it undoes.
    const failover = sim.events.find((e) => e.type === "action.dispatched" && e.detail.kind === "failover");
    const start = sim.events.find((e) => e.type === "phase.changed" && e.at === fb?.at);
    expect(start?.cause).toBe(failover?.seq);
  });

  it("auto: primary going down again during the soak restarts it", () => {
    const sim = onSecondary({ failback: "auto", cooldownSeconds: 0 });
    sim.observe({});
    sim.advance(200);
    sim.observe({ primary: ["nagios"] });
    sim.advance(10);
    sim.observe({});
    sim.advance(299);
    expect(sim.ids()).toEqual(["egress-gw:1"]);
    sim.advance(1);
    expect(sim.ids()).toEqual(["egress-gw:1", "egress-gw:2"]);
  });

  it("auto: not while paused", () => {
    const sim = onSecondary({ failback: "auto" });
    sim.observe({});
    sim.command("pause");
    sim.advance(3600);
    expect(sim.ids()).toHaveLength(1);
    sim.command("resume");
    expect(sim.ids()).toHaveLength(2);
  });

  it("manual failback command switches to the home side; rejected when already there", () => {
    const sim = onSecondary();
    sim.observe({});
    expect(sim.command("failback", { actor: "U1" }).rejected).toBeUndefined();
    expect(sim.dispatches.at(-1)).toMatchObject({ kind: "failback", from: "secondary", to: "primary" });
    sim.report("succeeded");
    expect(sim.command("failback").rejected).toBe("failback: primary is already active");
  });

  it("auto failback asks for approval when approval is required", () => {
    const sim = new Sim({ policy: { failback: "auto", approval: "required", cooldownSeconds: 600 } });
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(30);
    sim.command("approve", { actor: "U1" });
    sim.report("succeeded");
    expect(sim.state.activeSide).toBe("secondary");
    sim.observe({});
    sim.advance(600);
    expect(sim.state.phase).toBe("awaiting_approval");
    expect(sim.state.approval).toMatchObject({ kind: "failback", to: "primary" });
  });
});
