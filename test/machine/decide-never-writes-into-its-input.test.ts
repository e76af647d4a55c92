/**
 * `decide` copies only the parts of the state its rules write into (worker/engine/machine.ts
 * `writable`) and shares the rest with its input. Here every state handed to it is deep-frozen,
 * so a rule that writes into a shared part throws (ES modules run in strict mode) instead of
 * quietly changing the caller's state, over scripted incidents, drills and random histories.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Decision, MachineInput, MachineState } from "../../worker/engine/machine-types.ts";
import { Sim, type SimOptions } from "./sim.ts";

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** A Sim whose state is frozen before every decision. */
class FrozenSim extends Sim {
  readonly seenStates: MachineState[] = [];
  constructor(opts: SimOptions = {}) {
    super(opts);
  }
  override feed(input: MachineInput): Decision {
    this.seenStates.push(deepFreeze(this.state));
    return super.feed(input);
  }
}

const LIVE_DRILL = { cron: "0 3 * * 1", mode: "live" as const, holdSeconds: 60 };

describe("decide never writes into the state it is given", () => {
  it("through a failover, its reports, cooldown and an automatic failback", () => {
    const sim = new FrozenSim({ policy: { holdSeconds: 30, failback: "auto", failbackAfterSeconds: 60 } });
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(31);
    sim.report("running", { steps: [{ name: "delete-primary-route", status: "running" }] });
    sim.report("succeeded", { activeSide: "secondary" });
    sim.observe({});
    sim.advance(3600);
    sim.report("succeeded");
    expect(sim.ids()).toHaveLength(2);
    expect(sim.state.activeSide).toBe("primary");
  });

  it("through failed deliveries, a timeout, a failed action, retry and revert", () => {
    const sim = new FrozenSim({ policy: { holdSeconds: 0, actionTimeoutSeconds: 60 }, autoDeliver: false });
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(1);
    sim.delivered(false, "connection refused", { retryAfterMs: 1000 });
    sim.advance(700);
    sim.delivered(true);
    sim.report("failed", { error: { code: "preflight", message: "DaemonSet not ready" } });
    expect(sim.state.phase).toBe("failed");
    sim.command("retry");
    sim.delivered(true);
    sim.report("failed");
    sim.command("revert", { actor: "alice" });
    expect(sim.dispatches.length).toBeGreaterThan(2);
  });

  it("through live and dry-run drills, an approval, flapping and a config edit", () => {
    const sim = new FrozenSim({ policy: { approval: "required", holdSeconds: 10 }, drill: LIVE_DRILL });
    sim.command("drill", { actor: "bob" });
    sim.report("succeeded", { activeSide: "secondary" });
    sim.advance(61);
    sim.report("succeeded", { activeSide: "primary" });
    expect(sim.state.lastDrill?.outcome).toBe("completed");
    sim.command("drill", { mode: "dry-run" });
    sim.report("succeeded", { dryRun: true });
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(11);
    expect(sim.state.phase).toBe("awaiting_approval");
    sim.command("approve", { actor: "carol" });
    sim.report("succeeded", { activeSide: "secondary" });
    for (let i = 0; i < 6; i++) sim.observe(i % 2 === 0 ? { secondary: ["nagios"] } : {});
    expect(sim.state.flapping).toBe(true);
    sim.feed({ type: "config", policy: { ...sim.state.policy, quorum: 2 } });
    sim.feed({ type: "unconfigured" });
    expect(sim.seenStates.length).toBeGreaterThan(15);
  });

  it("over random histories", () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant("observe" as const), primary: fc.boolean(), secondary: fc.boolean() }),
      fc.record({ kind: fc.constant("advance" as const), seconds: fc.integer({ min: 0, max: 900 }) }),
      fc.record({
        kind: fc.constant("command" as const),
        command: fc.constantFrom("failover", "failback", "approve", "cancel", "pause", "resume", "drill", "retry"),
      }),
      fc.record({
        kind: fc.constant("report" as const),
        status: fc.constantFrom("running" as const, "succeeded" as const, "failed" as const),
      }),
    );
    fc.assert(
      fc.property(fc.boolean(), fc.array(step, { maxLength: 40 }), (required, steps) => {
        const sim = new FrozenSim({
          policy: { holdSeconds: 20, approval: required ? "required" : "auto", failback: "auto" },
          drill: LIVE_DRILL,
        });
        for (const s of steps) {
          if (s.kind === "observe")
            sim.observe({ primary: s.primary ? ["am"] : [], secondary: s.secondary ? ["am"] : [] });
          else if (s.kind === "advance") sim.advance(s.seconds);
          else if (s.kind === "command") sim.command(s.command, { actor: "t" });
          else if (sim.state.action) sim.report(s.status, { activeSide: sim.state.action.to });
        }
      }),
      { seed: 24, numRuns: 300 },
    );
  });
});
