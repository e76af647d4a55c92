/**
 * The messy sequences real monitoring produces (issue "decision safety"), each written as the
 * sequence that used to end in a missed failover, a spurious one, or a target that silently
 * stopped protecting itself. Pure: the machine alone, or the shell core over a memory store.
 */
import { describe, expect, it } from "vitest";
import { PolicySchema, validateWorkerConfig, type WorkerTarget } from "../../shared/config.ts";
import type { Signal } from "../../worker/engine/signals.ts";
import { parseNagios } from "../../worker/http/ingest/nagios.ts";
import {
  alarm,
  applyConfig,
  type CoreState,
  clear,
  ingest,
  MemoryTargetStore,
  newCoreState,
} from "../../worker/target/target-core.ts";
import { Sim, T0 } from "./sim.ts";

const HOUR = 3600;

describe("1. a firing signal that is never resolved stops counting (staleness)", () => {
  const target = (policy = {}, sides?: WorkerTarget["sides"]): WorkerTarget =>
    ({
      sides: sides ?? {
        primary: { matchers: ['side="primary"'] },
        secondary: { matchers: ['side="secondary"'] },
      },
      policy: PolicySchema.parse({ holdSeconds: 30, staleAfterSeconds: HOUR, ...policy }),
      initialActiveSide: "primary",
      record: false,
    }) as WorkerTarget;
  const signal = (side: string, at: number, over: Partial<Signal> = {}): Signal => ({
    source: "alertmanager",
    key: `am:${side}`,
    incident: `am:${side}#${at}`,
    status: "firing",
    soft: false,
    labels: { side },
    annotations: {},
    at,
    receivedAt: at,
    ...over,
  });
  function core(cfg = target()) {
    const store = new MemoryTargetStore();
    const state: CoreState = newCoreState("t", cfg, cfg);
    const send = (side: "primary" | "secondary", s: Signal, now: number) =>
      ingest(store, state, [{ side, signal: s }], [], now, now);
    return { store, state, send };
  }

  it("a stuck standby signal is announced stale once, leaves the side unknown, and clear lets failover proceed", () => {
    const { store, state, send } = core();
    send("secondary", signal("secondary", T0), T0);
    expect(state.machine.sides.secondary.health).toBe("down");
    // An hour later nothing re-sent it: the alarm observes it stale.
    const out = alarm(store, state, T0 + HOUR * 1000);
    expect(store.events.filter((e) => e.type === "signal.stale")).toHaveLength(1);
    expect(out.effects.some((e) => e.type === "notify" && /no longer counts as down evidence/.test(e.text))).toBe(true);
    expect(state.machine.sides.secondary).toMatchObject({ health: "unknown", staleSources: ["alertmanager"] });
    alarm(store, state, T0 + 2 * HOUR * 1000);
    expect(store.events.filter((e) => e.type === "signal.stale")).toHaveLength(1);
    // The primary goes down: blocked, and the reason says why and what to do.
    const t1 = T0 + 2 * HOUR * 1000;
    send("primary", signal("primary", t1), t1);
    alarm(store, state, t1 + 30_000);
    expect(state.machine.blocked).toBe("other-side-stale");
    // A person clears the stale signal: the standby is up again and, after riseSeconds, failover.
    clear(store, state, "am:secondary", { actor: "alice" }, t1 + 31_000);
    expect(store.events.at(-1)?.type).not.toBe("command.rejected");
    expect(store.events.some((e) => e.type === "signal.cleared" && e.detail.actor === "alice")).toBe(true);
    const done = alarm(store, state, t1 + 61_000);
    expect(done.effects.some((e) => e.type === "dispatch")).toBe(true);
  });

  it("a stale signal seen again counts again", () => {
    const { store, state, send } = core();
    send("secondary", signal("secondary", T0), T0);
    alarm(store, state, T0 + HOUR * 1000);
    expect(state.machine.sides.secondary.health).toBe("unknown");
    send("secondary", signal("secondary", T0), T0 + HOUR * 1000 + 5);
    expect(state.machine.sides.secondary.health).toBe("down");
  });

  it("arms the alarm for when the next signal goes stale", () => {
    const { send } = core();
    const out = send("secondary", signal("secondary", T0), T0);
    expect(out.effects.at(-1)).toEqual({ type: "setTimer", at: T0 + HOUR * 1000 });
  });

  it("re-routes stored signals when a side's matchers change; one that matches no side stops counting", () => {
    const { store, state, send } = core();
    send("secondary", signal("secondary", T0), T0);
    const moved = target(
      {},
      {
        primary: { matchers: ['side="secondary"'] },
        secondary: { matchers: ['side="elsewhere"'] },
      },
    );
    applyConfig(store, state, moved, T0 + 1000);
    expect(store.events.some((e) => e.type === "signal.rerouted" && e.detail.to === "primary")).toBe(true);
    expect(state.machine.sides).toMatchObject({ primary: { health: "down" }, secondary: { health: "up" } });
    const gone = target({}, { primary: { matchers: ['side="x"'] }, secondary: { matchers: ['side="y"'] } });
    applyConfig(store, state, gone, T0 + 2000);
    expect(store.events.some((e) => e.type === "signal.unrouted")).toBe(true);
    expect(state.machine.sides.primary.health).toBe("up");
  });

  it("clamps an `at` from a clock more than 300 s ahead to the receipt time, so its resolve is not stale", () => {
    const { store, state, send } = core();
    send("secondary", signal("secondary", T0 + 3600_000), T0);
    expect(store.events.some((e) => e.type === "signal.clock-skew")).toBe(true);
    expect(store.signal("am:secondary")?.at).toBe(T0);
    const r = send("secondary", signal("secondary", T0 + 60_000, { status: "resolved" }), T0 + 60_000);
    expect(r.result).toMatchObject({ accepted: 1, ignored: 0 });
    expect(state.machine.sides.secondary.health).toBe("up");
  });
});

describe("2. cancel dismisses the incidents firing now, not the side", () => {
  it("a new incident on the same side an hour later starts a new hold and fails over", () => {
    const sim = new Sim();
    sim.feed({
      type: "observed",
      sides: {
        primary: { firingSources: ["alertmanager"], heldSources: [], incidents: ["am:low#1"] },
        secondary: { firingSources: [], heldSources: [] },
      },
    });
    expect(sim.state.phase).toBe("pending");
    sim.command("cancel", { actor: "alice" });
    expect(sim.state.dismissed).toEqual({ kind: "failover", incidents: ["am:low#1"] });
    sim.advance(HOUR);
    expect(sim.ids()).toEqual([]);
    // The low-grade alert still fires; a real outage adds a new incident.
    sim.feed({
      type: "observed",
      sides: {
        primary: {
          firingSources: ["alertmanager", "nagios"],
          heldSources: [],
          incidents: ["am:low#1", "nagios:gw!#2"],
        },
        secondary: { firingSources: [], heldSources: [] },
      },
    });
    expect(sim.state.phase).toBe("pending");
    sim.advance(30);
    expect(sim.ids()).toEqual(["egress-gw:1"]);
  });

  it("an expired approval dismisses the incidents of that moment only", () => {
    const sim = new Sim({ policy: { approval: "required", approvalTimeoutSeconds: 60 } });
    const firing = (incidents: string[]) =>
      sim.feed({
        type: "observed",
        sides: {
          primary: { firingSources: ["alertmanager"], heldSources: [], incidents },
          secondary: { firingSources: [], heldSources: [] },
        },
      });
    firing(["am:a#1"]);
    sim.advance(30 + 60);
    expect(sim.state.phase).toBe("steady");
    expect(sim.types()).toContain("approval.expired");
    firing(["am:a#1", "am:b#1"]);
    expect(sim.state.phase).toBe("pending");
  });
});

describe("3. failed keeps watching and says so", () => {
  it("notifies when the active side goes down while the target is failed", () => {
    const sim = new Sim();
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(30);
    sim.report("failed", { error: { code: "preflight", message: "DaemonSet not ready" } });
    sim.observe({});
    expect(sim.state.phase).toBe("failed");
    const before = sim.notes.length;
    sim.observe({ primary: ["nagios"] });
    expect(sim.types().at(-1)).toBe("side.health-changed");
    const said = sim.notes.slice(before).join("\n");
    expect(said).toMatch(/primary \(active\) is DOWN while the target is failed/);
    expect(said).toMatch(/automatic action is off until retry, revert or cancel/);
  });
});

describe("5. configuration is not a command", () => {
  it("editing initialActiveSide never switches a target with state, even with failback auto", () => {
    const sim = new Sim({ policy: { failback: "auto", failbackAfterSeconds: 0 } });
    sim.observe({});
    sim.feed({
      type: "config",
      policy: PolicySchema.parse({ failback: "auto", failbackAfterSeconds: 0 }),
      initialActiveSide: "secondary",
    });
    sim.advance(HOUR);
    expect(sim.ids()).toEqual([]);
    expect(sim.state).toMatchObject({ activeSide: "primary", homeSide: "primary" });
    expect(sim.events.find((e) => e.type === "config.changed")?.detail).toMatchObject({
      initialActiveSideApplies: false,
    });
  });

  it("a target removed from the config takes no action when its hold expires, and audits that once", () => {
    const sim = new Sim();
    sim.observe({ primary: ["alertmanager"] });
    sim.feed({ type: "unconfigured" });
    sim.advance(HOUR);
    sim.feed({ type: "unconfigured" });
    expect(sim.ids()).toEqual([]);
    expect(sim.types().filter((t) => t === "target.unconfigured")).toHaveLength(1);
    expect(sim.timer).toBeNull();
    expect(sim.command("failover").rejected).toMatch(/not in the configuration/);
    // Back in the config: a fresh hold, then the failover.
    sim.feed({ type: "config", policy: PolicySchema.parse({}), initialActiveSide: "primary" });
    expect(sim.ids()).toEqual([]);
    sim.advance(30);
    expect(sim.ids()).toEqual(["egress-gw:1"]);
  });
});

describe("6. a committed dispatch is delivered (rule 16)", () => {
  it("re-sends when no delivery result is recorded within 15 s, not after actionTimeoutSeconds", () => {
    const sim = new Sim({ autoDeliver: false });
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(30);
    expect(sim.dispatches).toHaveLength(1);
    sim.advance(14);
    expect(sim.dispatches).toHaveLength(1);
    sim.advance(1);
    expect(sim.dispatches).toHaveLength(2);
    expect(sim.dispatches[1]?.id).toBe(sim.dispatches[0]?.id);
    expect(sim.types()).toContain("action.redelivered");
    // Once delivered, only the report timeout is due.
    sim.delivered(true);
    expect(sim.timer).toBe(sim.now + 600_000);
  });
});

describe("7. the agent's word wins (rule 13)", () => {
  it("a late succeeded report after the operator cancelled the failed action sets the active side", () => {
    const sim = new Sim({ policy: { dispatchRetries: 0, actionTimeoutSeconds: 60 } });
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(30 + 60);
    expect(sim.state.phase).toBe("failed");
    sim.command("cancel");
    expect(sim.state.phase).toBe("steady");
    sim.report("succeeded", { actionId: "egress-gw:1", activeSide: "secondary" });
    expect(sim.state).toMatchObject({ activeSide: "secondary", phase: "steady" });
    expect(sim.types()).toContain("action.reconciled");
    expect(sim.notes.at(-1)).toMatch(/did succeed after all/);
  });

  it("a running report extends the deadline", () => {
    const sim = new Sim({ policy: { actionTimeoutSeconds: 600 } });
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(30);
    sim.advance(590);
    sim.report("running");
    expect(sim.timer).toBe(sim.now + 600_000);
  });
});

describe("8. a way back after a half-finished failover (revert, rule 12)", () => {
  it("revert dispatches back to the failed action's from side, even when that side is down", () => {
    const sim = new Sim();
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(30);
    sim.report("failed", { error: { code: "create-route", message: "timed out" } });
    expect(sim.command("failback").rejected).toMatch(/already active/);
    expect(sim.command("revert", { actor: "alice" }).rejected).toBeUndefined();
    expect(sim.dispatches.at(-1)).toMatchObject({
      id: "egress-gw:2",
      from: "secondary",
      to: "primary",
      kind: "failback",
    });
    expect(
      sim.events.find((e) => e.type === "command.accepted" && e.detail.command === "revert")?.detail,
    ).toMatchObject({
      actor: "alice",
      revertOf: "egress-gw:1",
    });
    sim.report("succeeded", { activeSide: "primary" });
    // Restored: primary active again (still down, so policy holds again, now in cooldown).
    expect(sim.state.activeSide).toBe("primary");
    expect(sim.state.phase).not.toBe("failed");
    expect(sim.command("revert").rejected).toMatch(/nothing to revert/);
  });
});

describe("9. blocks release with a fresh hold (rule 14)", () => {
  it("when the cooldown ends, a destination that recovered during it must still have been up for riseSeconds", () => {
    const sim = new Sim({ policy: { cooldownSeconds: 600, riseSeconds: 120, maxAutoActionsPerDay: 5 } });
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(30);
    sim.report("succeeded"); // on secondary; cooldown until +630 s
    sim.advance(570);
    // At +600 s the old primary recovers and the secondary goes down.
    sim.observe({ secondary: ["alertmanager"] });
    sim.advance(30); // hold and cooldown both over at +630 s; primary up for 30 s only
    expect(sim.state.blocked).toBe("other-side-rising");
    expect(sim.ids()).toHaveLength(1);
    sim.advance(89);
    expect(sim.ids()).toHaveLength(1);
    sim.advance(1); // +720 s: up for riseSeconds
    expect(sim.ids()).toHaveLength(2);
  });

  it("after both sides down, the recovered side must rise before it takes traffic", () => {
    const sim = new Sim({ policy: { riseSeconds: 60 } });
    sim.observe({ primary: ["alertmanager"], secondary: ["nagios"] });
    sim.advance(60);
    expect(sim.state.blocked).toBe("both-sides-down");
    sim.observe({ primary: ["alertmanager"] });
    sim.advance(59);
    expect(sim.ids()).toEqual([]);
    sim.advance(1);
    expect(sim.ids()).toEqual(["egress-gw:1"]);
  });
});

describe("10. config and input edge cases", () => {
  it("quorum 3 is refused with path: message", () => {
    const base = {
      agent: { url: "http://127.0.0.1:8788" },
      targets: {
        t: {
          sides: { primary: { matchers: ['a="1"'] }, secondary: { matchers: ['a="2"'] } },
          policy: { quorum: 3 },
        },
      },
    };
    const r = validateWorkerConfig(base);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems).toEqual([{ path: "targets.t.policy.quorum", message: expect.stringMatching(/two/) }]);
  });

  it("a Nagios PROBLEM with a newer problem id in the same second as the RECOVERY is a new incident", () => {
    const store = new MemoryTargetStore();
    const cfg = {
      sides: { primary: { matchers: ['host="gw"'] }, secondary: { matchers: ['host="gw2"'] } },
      policy: PolicySchema.parse({}),
      initialActiveSide: "primary" as const,
    };
    const state = newCoreState("t", cfg, cfg);
    const body = (type: string, state: string, id: string, last: string) => ({
      NOTIFICATIONTYPE: type,
      HOSTNAME: "gw",
      SERVICEDESC: "",
      HOSTSTATE: state,
      HOSTSTATETYPE: "HARD",
      HOSTPROBLEMID: id,
      LASTHOSTPROBLEMID: last,
      TIMET: String(T0 / 1000),
    });
    const feed = (b: Record<string, string>) => {
      const parsed = parseNagios(b, T0);
      if (!parsed.ok) throw new Error("parse");
      return ingest(store, state, [{ side: "primary", signal: parsed.signal }], [], T0, T0);
    };
    feed(body("PROBLEM", "DOWN", "7", "6"));
    feed(body("RECOVERY", "UP", "0", "7"));
    const next = feed(body("PROBLEM", "DOWN", "8", "7"));
    expect(next.result).toEqual({ accepted: 1, duplicates: 0, ignored: 0 });
    expect(store.signal("nagios:gw!")).toMatchObject({ status: "firing", incident: "nagios:gw!#problem:8" });
  });
});
