import { describe, expect, it } from "vitest";
import { Sim } from "./sim.ts";

// Rule 7: manual failover/failback bypass hold, quorum, flapping, cooldown and budget, but not
// rule 2 unless force: true (covered in never-switch-to-a-down-side.test.ts).
describe("rule 7: manual commands bypass policy", () => {
  const situations = [
    { name: "during the hold", setup: (sim: Sim) => sim.observe({ primary: ["alertmanager"] }) },
    { name: "below quorum", setup: (sim: Sim) => sim.observe({ primary: ["alertmanager"] }), policy: { quorum: 2 } },
    { name: "with nothing firing at all", setup: () => undefined },
    { name: "while paused", setup: (sim: Sim) => sim.command("pause") },
    {
      name: "while flapping",
      setup: (sim: Sim) => {
        for (let i = 0; i < 6; i++) {
          sim.observe(i % 2 === 0 ? { primary: ["alertmanager"] } : {});
          sim.advance(1);
        }
        expect(sim.state.flapping).toBe(true);
      },
    },
    { name: "with a zero budget", setup: () => undefined, policy: { maxAutoActionsPerDay: 0 } },
    {
      name: "in cooldown",
      setup: (sim: Sim) => {
        sim.command("failover");
        sim.report("succeeded");
        sim.command("failover");
        sim.report("succeeded");
        expect(sim.state.cooldownUntil).toBeGreaterThan(sim.now);
      },
    },
    {
      name: "while awaiting approval",
      setup: (sim: Sim) => {
        sim.observe({ primary: ["alertmanager"] });
        sim.advance(30);
        expect(sim.state.phase).toBe("awaiting_approval");
      },
      policy: { approval: "required" as const },
    },
  ];
  for (const c of situations) {
    it(`failover is dispatched at once ${c.name}`, () => {
      const sim = new Sim({ policy: c.policy ?? {} });
      c.setup(sim);
      const before = sim.ids().length;
      const d = sim.command("failover", { actor: "U42", reason: "planned maintenance" });
      expect(d.rejected).toBeUndefined();
      expect(sim.ids()).toHaveLength(before + 1);
      expect(sim.dispatches.at(-1)).toMatchObject({ kind: "failover", reason: "planned maintenance", force: false });
      expect(sim.state.action).toMatchObject({ trigger: "manual", actor: "U42" });
      const accepted = sim.events.filter((e) => e.type === "command.accepted").at(-1);
      expect(accepted?.detail).toMatchObject({ command: "failover", actor: "U42" });
    });
  }

  it("manual actions do not spend the automatic budget", () => {
    const sim = new Sim({ policy: { maxAutoActionsPerDay: 1 } });
    sim.command("failover");
    sim.report("succeeded");
    expect(sim.state.autoActions).toEqual([]);
  });

  it("a manual command from failed starts a new action", () => {
    const sim = new Sim();
    sim.command("failover");
    sim.report("failed");
    expect(sim.state.phase).toBe("failed");
    expect(sim.command("failover").rejected).toBeUndefined();
    expect(sim.ids()).toEqual(["egress-gw:1", "egress-gw:2"]);
  });

  it("pause and resume are idempotent-rejecting and audited", () => {
    const sim = new Sim();
    expect(sim.command("resume").rejected).toBe("resume: target is not paused");
    expect(sim.command("pause", { actor: "U1" }).rejected).toBeUndefined();
    expect(sim.state.paused).toBe(true);
    expect(sim.command("pause").rejected).toBe("pause: target is already paused");
    expect(sim.command("resume").rejected).toBeUndefined();
    expect(sim.state.paused).toBe(false);
    expect(sim.types().filter((t) => t.startsWith("command."))).toEqual([
      "command.rejected",
      "command.accepted",
      "command.rejected",
      "command.accepted",
    ]);
  });
});
