/**
 * Property tests: random histories of signals, commands, reports, delivery results and time steps
 * (hours to days of policy time each, simulated in milliseconds) must keep the machine's safety
 * invariants at every single step.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PolicySchema, type Side } from "../../shared/config.ts";
import { ActionRequestSchema } from "../../shared/protocol.ts";
import { decide, decideParsed } from "../../worker/engine/machine.ts";
import type { ActionState, Decision, MachineInput, MachineState } from "../../worker/engine/machine-types.ts";
import { MachineInputSchema, MachineStateSchema } from "../../worker/engine/machine-types.ts";
import { makeState, type PolicyInput, T0, TARGET } from "./sim.ts";

const DAY = 24 * 3600 * 1000;
const SOURCES = ["alertmanager", "nagios", "grafana"] as const;
// approve and drill appear twice: they only matter in particular phases, which are reached less often.
const COMMANDS = [
  "failover",
  "failback",
  "approve",
  "approve",
  "cancel",
  "pause",
  "resume",
  "drill",
  "drill",
  "retry",
] as const;

const policyArb = fc.record({
  holdSeconds: fc.integer({ min: 0, max: 120 }),
  quorum: fc.integer({ min: 1, max: 2 }),
  cooldownSeconds: fc.integer({ min: 0, max: 1200 }),
  approval: fc.constantFrom("auto", "required"),
  approvalTimeoutSeconds: fc.integer({ min: 1, max: 900 }),
  failback: fc.constantFrom("manual", "auto"),
  failbackAfterSeconds: fc.integer({ min: 0, max: 600 }),
  flap: fc.record({ windowSeconds: fc.integer({ min: 1, max: 900 }), maxTransitions: fc.integer({ min: 1, max: 5 }) }),
  maxAutoActionsPerDay: fc.integer({ min: 0, max: 3 }),
  actionTimeoutSeconds: fc.integer({ min: 1, max: 900 }),
  dispatchRetries: fc.integer({ min: 0, max: 3 }),
  riseSeconds: fc.option(fc.integer({ min: 0, max: 120 }), { nil: undefined }),
  requireReady: fc.boolean(),
});

// Biased towards quiet sides, so that histories often reach the interesting states (a healthy
// other side to fail over to, live drills holding) rather than "both sides down" forever.
const sourcesArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant([] as string[]) },
  { weight: 2, arbitrary: fc.subarray([...SOURCES]) },
);
const heldArb = fc.oneof(
  { weight: 6, arbitrary: fc.constant([] as string[]) },
  { weight: 1, arbitrary: fc.subarray([...SOURCES]) },
);
// Incidents from a small pool, so that the same incident often fires again after a dismissal.
const incidentsArb = fc.subarray(["i1", "i2", "i3"]);
const observeArb = fc.record({
  type: fc.constant("observe" as const),
  primary: sourcesArb,
  secondary: sourcesArb,
  heldPrimary: heldArb,
  heldSecondary: heldArb,
  stalePrimary: heldArb,
  staleSecondary: heldArb,
  incidentsPrimary: incidentsArb,
  incidentsSecondary: incidentsArb,
});
/** The agents of the two sides in these histories (design §11.1: one per side). */
const AGENTS = ["agent-a", "agent-b"] as const;
const SIDE_AGENTS = { primary: "agent-a", secondary: "agent-b" };

const stepArb = fc.oneof(
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant("config" as const),
      initialActiveSide: fc.constantFrom("primary" as const, "secondary" as const),
    }),
  },
  { weight: 1, arbitrary: fc.record({ type: fc.constant("unconfigure" as const) }) },
  {
    weight: 4,
    arbitrary: fc.record({ type: fc.constant("advance" as const), seconds: fc.integer({ min: 0, max: 1800 }) }),
  },
  { weight: 3, arbitrary: observeArb },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constant("command" as const),
      command: fc.constantFrom(...COMMANDS),
      force: fc.boolean(),
      mode: fc.constantFrom(undefined, "dry-run" as const, "live" as const),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      type: fc.constant("report" as const),
      status: fc.constantFrom("running" as const, "succeeded" as const, "failed" as const),
      // Mostly the current action; sometimes an old epoch or an unknown id.
      stale: fc.oneof(
        { weight: 4, arbitrary: fc.constant(0) },
        { weight: 1, arbitrary: fc.integer({ min: 1, max: 5 }) },
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constant("delivery" as const),
      ok: fc.boolean(),
      // A transport that gave up for good (QStash's failure callback), and a receiver's Retry-After.
      final: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
      retryAfterMs: fc.option(fc.integer({ min: 0, max: 86_400_000 }), { nil: undefined }),
    }),
  },
);
/** Agent silences and returns (rule 17), and the answers to the probes the machine asks for. */
const agentStepArb = fc.oneof(
  fc.record({
    type: fc.constant("liveness" as const),
    agent: fc.constantFrom(...AGENTS),
    silent: fc.boolean(),
  }),
  fc.record({ type: fc.constant("probe" as const), agent: fc.constantFrom(...AGENTS), ok: fc.boolean() }),
);
/** A readiness evaluation toward a side (design §11.3), known for up to two intervals (or less: it goes unknown). */
const readinessStepArb = fc.record({
  type: fc.constant("readiness" as const),
  side: fc.constantFrom("primary" as const, "secondary" as const),
  state: fc.constantFrom("ready" as const, "not-ready" as const),
  validSeconds: fc.integer({ min: 0, max: 3600 }),
});
const historyStepArb = fc.oneof(
  { weight: 12, arbitrary: stepArb },
  { weight: 1, arbitrary: agentStepArb },
  { weight: 2, arbitrary: readinessStepArb },
);

type Step = typeof historyStepArb extends fc.Arbitrary<infer T> ? T : never;

const toMs = (s: number) => s * 1000;
/** An observation's stale sources and incidents when none are of interest. */
const QUIET = { stalePrimary: [], staleSecondary: [], incidentsPrimary: [], incidentsSecondary: [] };
const down = (st: MachineState, side: Side) => st.sides[side].health === "down";

/** What the test itself knows about time-driven deadlines, computed independently of machine-rules. */
function simpleDeadlines(st: MachineState, now: number): number[] {
  // Rule 15: a target missing from the config waits for nothing.
  if (!st.configured) return [];
  const out: number[] = [];
  if (st.phase === "pending" && st.pendingSince !== null) out.push(st.pendingSince + toMs(st.policy.holdSeconds));
  if (st.phase === "awaiting_approval" && st.approval) out.push(st.approval.deadline);
  if (st.phase === "executing" && st.action?.deadline != null) out.push(st.action.deadline);
  if (st.flapping && st.lastActiveTransitionAt !== null)
    out.push(st.lastActiveTransitionAt + toMs(st.policy.flap.windowSeconds));
  if (st.cooldownUntil !== null) out.push(st.cooldownUntil);
  if (st.drill?.holdUntil != null) out.push(st.drill.holdUntil);
  return out.filter((t) => t > now);
}

/** How often histories reached each interesting situation (asserted on a fixed seed, so coverage cannot rot). */
const seen = new Map<string, number>();
function saw(what: string): void {
  seen.set(what, (seen.get(what) ?? 0) + 1);
}

/** Runs one history, checking every invariant after every decide call. */
class Checker {
  state: MachineState;
  now = T0;
  timer: number | null = null;
  autoDispatchTimes: number[] = [];
  calls = 0;
  readonly maxAuto: number;
  readonly policy: PolicyInput;
  /** Where the last final `succeeded` report of the latest action put traffic (rule 13). */
  expectedActive: Side = "primary";
  /** The readiness fed per side (the test's own model): state, evaluation time, known until. */
  readiness: Partial<Record<Side, { state: "ready" | "not-ready"; at: number; validUntil: number }>> = {};
  /** The destination's readiness by the model when the running hold started. */
  holdStartReadiness: "ready" | "not-ready" | "unknown" = "unknown";

  constructor(policy: PolicyInput, drillMode: "dry-run" | "live") {
    this.policy = policy;
    this.maxAuto = PolicySchema.parse(policy).maxAutoActionsPerDay;
    this.state = {
      ...makeState({ policy, drill: { cron: "0 3 * * 1", mode: drillMode, holdSeconds: 60 } }),
      sideAgents: { ...SIDE_AGENTS },
    };
  }

  feed(input: MachineInput): Decision {
    const before = this.state;
    const beforeJson = JSON.stringify(before);
    const d = decide(before, input, this.now);
    this.calls++;
    // Purity and determinism.
    expect(JSON.stringify(before)).toBe(beforeJson);
    expect(decide(before, input, this.now)).toEqual(d);
    // The shell's fast path (no re-validation of an input it built itself) decides the same.
    expect(decideParsed(before, MachineInputSchema.parse(input), this.now)).toEqual(d);
    const after = d.state;

    // Re-validates as the Durable Object reads it back.
    expect(MachineStateSchema.parse(JSON.parse(JSON.stringify(after)))).toEqual(after);

    // Audit: consecutive seqs, every change audited, every event but the root has an earlier cause.
    const audits = d.effects.flatMap((e) => (e.type === "audit" ? [e.event] : []));
    audits.forEach((ev, i) => {
      expect(ev.seq).toBe(before.seq + i + 1);
      expect(ev.at).toBe(this.now);
      // Only the first event of an input that came without a cause (a command, a report) may be
      // a root; timer-driven events name the event that set their deadline.
      const mayBeRoot = i === 0 && input.cause === undefined && input.type !== "timer";
      if (!mayBeRoot) {
        expect(ev.cause).toBeDefined();
        expect(ev.cause ?? Number.POSITIVE_INFINITY).toBeLessThan(ev.seq);
      }
      if (i === 0 && input.cause !== undefined) expect(ev.cause).toBe(input.cause);
    });
    expect(after.seq).toBe(before.seq + audits.length);
    // A readiness evaluation that repeats the last one moves only its times (design §11.3), unaudited.
    const unaudited = (st: MachineState) => JSON.stringify({ ...st, readiness: undefined });
    if (unaudited(after) !== unaudited(before)) expect(audits.length).toBeGreaterThan(0);

    // Exactly one setTimer, last, never in the past, and no later than any deadline the test knows.
    const timers = d.effects.filter((e) => e.type === "setTimer");
    expect(timers).toHaveLength(1);
    expect(d.effects.at(-1)?.type).toBe("setTimer");
    const at = timers[0]?.type === "setTimer" ? timers[0].at : null;
    if (at !== null) expect(at).toBeGreaterThan(this.now);
    const known = simpleDeadlines(after, this.now);
    if (known.length > 0) {
      expect(at).not.toBeNull();
      expect(at ?? 0).toBeLessThanOrEqual(Math.min(...known));
    }
    // Nothing falls due before the timer: an early alarm changes nothing.
    if (at !== null && at - 1 > this.now) {
      const early = decide(after, { type: "timer" }, at - 1);
      expect(early.state).toEqual(after);
      expect(early.effects.filter((e) => e.type !== "setTimer")).toEqual([]);
    }
    this.timer = at;

    // A hold started in this step (it may also have expired in it, with holdSeconds 0).
    const holdAt = audits.findIndex((e) => e.type === "phase.changed" && e.detail.to === "pending");
    if (holdAt >= 0) {
      // The hold is toward the side standing by when it began: an action that switched sides
      // earlier in this step (a failover that succeeded, then the new active side went down) moved it.
      const switched = audits
        .slice(0, holdAt)
        .findLast((e) => e.type === "action.succeeded" && e.detail.dryRun === false);
      const active = (switched?.detail.to as "primary" | "secondary" | undefined) ?? before.activeSide;
      const fact = this.readiness[active === "primary" ? "secondary" : "primary"];
      this.holdStartReadiness = fact && this.now < fact.validUntil ? fact.state : "unknown";
    }
    // Dispatch safety.
    const dispatches = d.effects.flatMap((e) => (e.type === "dispatch" ? [e.request] : []));
    // Every request is one the agent accepts (design §6).
    for (const r of dispatches) expect(ActionRequestSchema.parse(r)).toEqual(r);
    const newIds = [...new Set(dispatches.map((r) => r.id))].filter((id) => id !== before.action?.id);
    expect(newIds.length).toBeLessThanOrEqual(1);
    if (before.phase === "executing" && newIds.length > 0) {
      // At most one action in flight: a new id only after the in-flight one ended in this step.
      const ended = audits.findIndex(
        // A dry run abandoned for a real switch has ended too (rule 11).
        (e) =>
          (e.type === "action.succeeded" || e.type === "action.failed" || e.type === "action.abandoned") &&
          e.detail.id === before.action?.id,
      );
      const started = audits.findIndex((e) => e.type === "action.dispatched" && e.detail.id === newIds[0]);
      expect(ended).toBeGreaterThanOrEqual(0);
      expect(ended).toBeLessThan(started);
      saw("back-to-back");
    }
    for (const id of newIds) {
      const req = dispatches.find((r) => r.id === id);
      const action: ActionState | null = after.action?.id === id ? after.action : null;
      expect(action).not.toBeNull();
      if (!req || !action) continue;
      // Never to a down side unless forced.
      if (!req.force) expect(down(after, req.to)).toBe(false);
      // Design §11.3: with requireReady, no automatic failover into a side not ready at the start of the hold.
      if ((action.trigger === "automatic" || action.trigger === "approved") && action.kind === "failover") {
        if (after.policy.requireReady) {
          expect(this.holdStartReadiness).not.toBe("not-ready");
          saw("automatic-failover-under-requireReady");
        }
      }
      // Rule 17: no automatic dispatch into a side whose agent is silent; every action goes to its side's agent.
      if (action.trigger === "automatic") {
        expect(after.agentLiveness[after.sideAgents[req.to]]?.silent ?? false).toBe(false);
        expect(req.agent).toBe(after.sideAgents[req.to]);
        saw("automatic-dispatch-agent-heard");
      }
      if (action.trigger === "automatic") {
        expect(after.paused).toBe(false);
        expect(after.flapping).toBe(false);
        expect(after.cooldownUntil !== null && after.cooldownUntil > this.now).toBe(false);
        expect(after.sides[req.to].health).toBe("up");
      }
      if (action.trigger === "automatic" || action.trigger === "approved") {
        this.autoDispatchTimes.push(this.now);
        const inWindow = this.autoDispatchTimes.filter((t) => t > this.now - DAY);
        expect(inWindow.length).toBeLessThanOrEqual(this.maxAuto);
      }
    }

    // Rule 15: a target missing from the config never dispatches.
    if (!before.configured && input.type !== "config") expect(dispatches).toEqual([]);
    if (!after.configured) expect(dispatches).toEqual([]);
    for (const id of newIds) {
      const a = after.action?.id === id ? after.action : null;
      // Rule 14: an automatic failover goes only to a side up for at least riseSeconds.
      if (a?.trigger === "automatic" && a.kind === "failover") {
        const to = before.sides[a.to];
        const rise = toMs(after.policy.riseSeconds ?? after.policy.holdSeconds);
        if (to.upSince !== null) expect(this.now - to.upSince).toBeGreaterThanOrEqual(rise);
        saw("automatic-failover-after-rise");
      }
    }
    // Rule 10: a dismissal never covers a new incident: steady with the active side down means
    // every incident firing on it was dismissed.
    const active = after.sides[after.activeSide];
    if (
      after.configured &&
      !after.drill &&
      after.phase === "steady" &&
      active.firingSources.length >= after.policy.quorum
    ) {
      expect(after.dismissed?.kind).toBe("failover");
      for (const i of active.incidents) expect(after.dismissed?.incidents).toContain(i);
      saw("dismissed-holds");
    }
    // Rule 13: activeSide equals where the last final succeeded report of the latest action put it.
    if (input.type === "report" && input.report.status === "succeeded" && !input.report.dryRun) {
      const done = audits.find(
        (e) =>
          (e.type === "action.succeeded" || e.type === "action.reconciled") && e.detail.id === input.report.actionId,
      );
      if (done) {
        this.expectedActive = input.report.activeSide ?? (before.action?.to as Side);
        if (done.type === "action.reconciled") saw("reconciled");
      }
    }
    expect(after.activeSide).toBe(this.expectedActive);

    // Only a succeeded, non-dry-run report for the current action changes the active side.
    if (after.activeSide !== before.activeSide) {
      expect(input.type).toBe("report");
      if (input.type === "report") {
        expect(input.report.status).toBe("succeeded");
        expect(input.report.dryRun).toBe(false);
      }
    }
    saw(`phase:${after.phase}`);
    if (after.flapping) saw("flapping");
    if (after.drill?.stage === "holding") saw("live-drill-holding");
    if (after.lastDrill?.ok) saw(`drill-completed:${after.lastDrill.mode}`);
    if (after.blocked) saw(`blocked:${after.blocked}`);
    if (d.rejected) saw("rejected");
    for (const id of newIds) saw(`dispatch:${after.action?.id === id ? after.action.trigger : "?"}`);
    if (newIds.length > 0 && after.action?.force) saw("dispatch:forced");
    this.state = after;
    return d;
  }

  run(step: Step): void {
    switch (step.type) {
      case "advance": {
        const until = this.now + toMs(step.seconds);
        while (this.timer !== null && this.timer <= until) {
          this.now = this.timer;
          this.feed({ type: "timer" });
        }
        this.now = until;
        return;
      }
      case "observe": {
        // The shell audits the signal first and passes that event as the cause.
        this.state = { ...this.state, seq: this.state.seq + 1 };
        const side = (
          firing: string[],
          held: string[],
          stale: string[] | undefined,
          incidents: string[] | undefined,
        ) => ({
          firingSources: firing,
          heldSources: held,
          // As the shell observes: a source is stale only when none of its signals is fresh.
          staleSources: (stale ?? []).filter((x) => !firing.includes(x) && !held.includes(x)),
          // Incidents fire only where something fires.
          incidents: firing.length + held.length > 0 ? (incidents ?? []) : [],
        });
        this.feed({
          type: "observed",
          sides: {
            primary: side(step.primary, step.heldPrimary, step.stalePrimary, step.incidentsPrimary),
            secondary: side(step.secondary, step.heldSecondary, step.staleSecondary, step.incidentsSecondary),
          },
          cause: this.state.seq,
        });
        return;
      }
      case "config":
        this.feed({
          type: "config",
          policy: PolicySchema.parse(this.policy),
          initialActiveSide: step.initialActiveSide,
          ...(this.state.drillConfig ? { drill: this.state.drillConfig } : {}),
          agents: { ...SIDE_AGENTS },
        });
        return;
      case "unconfigure":
        this.feed({ type: "unconfigured" });
        return;
      case "liveness":
        this.feed({ type: "agent", agent: step.agent, silent: step.silent, at: this.now });
        if (this.state.blocked === "agent-silent") saw("blocked:agent-silent");
        return;
      case "probe":
        this.feed({ type: "probe-result", agent: step.agent, ok: step.ok });
        return;
      case "readiness": {
        const validUntil = this.now + toMs(step.validSeconds);
        const prev = this.readiness[step.side];
        // The engine keeps only a newer evaluation; so does the model.
        if (!prev || this.now > prev.at) this.readiness[step.side] = { state: step.state, at: this.now, validUntil };
        this.feed({ type: "readiness", side: step.side, state: step.state, at: this.now, validUntil });
        if (this.state.blocked === "not-ready") saw("blocked:not-ready");
        return;
      }
      case "command":
        this.feed({
          type: "command",
          command: step.command,
          force: step.force,
          actor: "U1",
          ...(step.mode ? { mode: step.mode } : {}),
        });
        return;
      case "report": {
        const a = this.state.action;
        const epoch = Math.max(0, this.state.epoch - step.stale);
        this.feed({
          type: "report",
          report: {
            actionId: step.stale === 0 && a ? a.id : `${TARGET}:${epoch}`,
            target: TARGET,
            status: step.status,
            dryRun: a?.dryRun ?? false,
            steps: [{ name: "step-1", status: step.status === "running" ? "running" : step.status }],
            at: new Date(this.now).toISOString(),
          },
        });
        return;
      }
      case "delivery":
        this.feed({
          type: "dispatch-result",
          actionId: this.state.action?.id,
          ok: step.ok,
          error: "ECONNREFUSED",
          final: step.final,
          ...(step.retryAfterMs === undefined ? {} : { retryAfterMs: step.retryAfterMs }),
        });
        return;
    }
  }
}

/** Runs random histories through the Checker; returns how many decide calls they made. */
function explore(numRuns: number, seed?: number, path?: string): number {
  let calls = 0;
  fc.assert(
    fc.property(
      policyArb,
      fc.constantFrom("dry-run" as const, "live" as const),
      fc.array(historyStepArb, { minLength: 10, maxLength: 80 }),
      (policy, mode, steps) => {
        const c = new Checker(policy, mode);
        for (const s of steps) c.run(s);
        calls += c.calls;
      },
    ),
    { numRuns, ...(seed === undefined ? {} : { seed }), ...(path === undefined ? {} : { path }) },
  );
  return calls;
}

describe("invariants hold under random histories", () => {
  it("safety, audit, timer, determinism and schema invariants at every step", () => {
    // A fresh seed each run, so that every CI run explores new histories (fast-check prints the
    // seed and the shrunk counterexample of a failure).
    expect(explore(150)).toBeGreaterThan(1000);
  });

  it("a hold that starts in the step a manual failover succeeds is judged toward the new standby", () => {
    // Found by a random seed: the failover to secondary succeeded, secondary went down in the same
    // step and the hold toward primary (ready) began; the checker looked at the old standby.
    explore(
      1,
      212587114,
      "80:0:0:0:0:0:0:1:1:1:2:8:10:10:10:10:5:8:7:7:7:7:7:7:7:7:7:7:7:8:8:8:8:8:8:8:8:9:9:9:9:9:9:9:9:9:9",
    );
  });

  it("the generator reaches every situation the invariants are meant to be checked in", () => {
    // Coverage is judged on a fixed seed: a random one reaches the rarer situations (a rising
    // other side, a paused target's blocked decision) only a handful of times in 150 histories,
    // and sometimes not at all. The invariants are checked in these histories too.
    seen.clear();
    expect(explore(300, 20261201)).toBeGreaterThan(2000);
    for (const what of [
      "phase:pending",
      "phase:awaiting_approval",
      "phase:executing",
      "phase:failed",
      "flapping",
      "blocked:both-sides-down",
      "blocked:paused",
      "blocked:budget",
      "rejected",
      "dispatch:automatic",
      "dispatch:manual",
      "dispatch:drill",
      "dispatch:forced",
      "automatic-failover-after-rise",
      "dismissed-holds",
      "reconciled",
      "blocked:other-side-rising",
      "blocked:agent-silent",
      "automatic-dispatch-agent-heard",
      "blocked:not-ready",
      "automatic-failover-under-requireReady",
    ]) {
      expect.soft(seen.get(what) ?? 0, what).toBeGreaterThan(0);
    }
  });

  it("the daily budget holds over days of hourly incidents", () => {
    fc.assert(
      fc.property(
        policyArb,
        fc.array(
          fc.oneof(
            fc.record({ type: fc.constant("advance" as const), seconds: fc.integer({ min: 0, max: 6 * 3600 }) }),
            observeArb,
            fc.record({
              type: fc.constant("report" as const),
              status: fc.constant("succeeded" as const),
              stale: fc.constant(0),
            }),
            fc.record({
              type: fc.constant("command" as const),
              command: fc.constant("approve" as const),
              force: fc.constant(false),
              mode: fc.constant(undefined),
            }),
          ),
          { minLength: 20, maxLength: 120 },
        ),
        (policy, steps) => {
          const c = new Checker({ ...policy, cooldownSeconds: 0 }, "dry-run");
          for (const s of steps) c.run(s);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("a side that recovers within holdSeconds never causes an action", () => {
    const burst = fc.record({
      sources: fc.subarray([...SOURCES], { minLength: 1 }),
      side: fc.constantFrom("primary" as const, "secondary" as const),
      downFraction: fc.double({ min: 0, max: 0.99, noNaN: true }),
      upSeconds: fc.integer({ min: 0, max: 3600 }),
    });
    fc.assert(
      fc.property(policyArb, fc.array(burst, { minLength: 1, maxLength: 40 }), (policy, bursts) => {
        const p = PolicySchema.parse({ ...policy, holdSeconds: Math.max(1, policy.holdSeconds), failback: "manual" });
        const c = new Checker(p, "dry-run");
        const dispatched: string[] = [];
        for (const b of bursts) {
          c.run({
            type: "observe",
            primary: b.side === "primary" ? b.sources : [],
            secondary: b.side === "secondary" ? b.sources : [],
            heldPrimary: [],
            heldSecondary: [],
            ...QUIET,
          });
          // Stays down strictly less than the hold, then recovers.
          c.run({ type: "advance", seconds: Math.floor(p.holdSeconds * b.downFraction) });
          c.run({ type: "observe", primary: [], secondary: [], heldPrimary: [], heldSecondary: [], ...QUIET });
          c.run({ type: "advance", seconds: b.upSeconds });
          if (c.state.action) dispatched.push(c.state.action.id);
        }
        expect(dispatched).toEqual([]);
        expect(c.state.activeSide).toBe("primary");
      }),
      { numRuns: 150 },
    );
  });
});
