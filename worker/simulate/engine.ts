/**
 * The replay engine of `npm run simulate` (design §10): recorded inputs through the worker's own
 * parsers, routing, signal merge and `decide()` on a virtual clock, once per policy variant.
 *
 * Pure and deterministic: no clock, no I/O, no Node or workerd imports. Time only moves to the
 * next input, alarm or simulated agent report; equal times are taken in a fixed order (agent
 * reports, then alarms, by target name; then inputs, by content), so the same inputs give the
 * same result whatever order their lines came in.
 */
import type { Policy, Side, WorkerConfig, WorkerTarget } from "../../shared/config.ts";
import type { ActionReport, ActionRequest } from "../../shared/protocol.ts";
import { BlockerSchema } from "../engine/machine-types.ts";
import { routeLabels } from "../engine/routing.ts";
import type { Delivery, IngestBatch, IngestWarning, Signal } from "../engine/signals.ts";
import { parseAlertmanager } from "../http/ingest/alertmanager.ts";
import { parseNagios } from "../http/ingest/nagios.ts";
import { type AgentSilence, livenessInputs } from "./agent-silences.ts";
import { type InputProblem, type SimInput, sortInputs } from "./inputs.ts";
import { type AuditEvent, type Effect, type MachineState, ReplayTarget, type Step } from "./replay-target.ts";
import { type Variant, variantPolicies } from "./variants.ts";

/** Options of one simulation. */
export interface SimulateOptions {
  config: WorkerConfig;
  /** Run in this order; the first is usually {@link AS_CONFIGURED}. */
  variants: readonly Variant[];
  /** A dispatched action's agent reports `succeeded` this long after dispatch (design §10: 5). */
  actionSeconds: number;
  /** Where the replay starts and ends (alarms due later never fire); default: the inputs' span. */
  from?: number;
  until?: number;
  /** Keep each target's audit events and state segments (timeline, HTML); off for benchmarks. */
  keepTimeline?: boolean;
  /** Agents silent for a while (`--agent-silent`): liveness inputs of decide(); probes go unanswered. */
  agentSilences?: readonly AgentSilence[];
}

/** Time the active side was down, by what turnout was doing (ms). */
export interface DownTime {
  /** Holding (`pending`, hold not yet elapsed). */
  hold: number;
  /** Past the hold but blocked (`pending` with a blocker). */
  blocked: number;
  /** Waiting for an approval. */
  approval: number;
  /** In phase `failed`. */
  failed: number;
  /** `steady` while down: the incident was dismissed, or a drill ran. */
  steady: number;
  /** All of the above: the active side down while no switch was under way. */
  total: number;
}

/** What one target (or a whole variant, summed) did. */
export interface Summary {
  failovers: number;
  failbacks: number;
  /** Decisions blocked, by reason (failover blockers, `quorum`, `stale`). */
  blocked: Record<string, number>;
  approvals: number;
  downMs: DownTime;
  /** Alerts on the active side that resolved (firing → resolved of one incident). */
  alerts: number;
  /** Of those, the ones that lasted less than the hold: the failovers the hold saved. */
  shortAlerts: number;
  signals: { accepted: number; duplicates: number; ignored: number };
}

/** The target's state between two decisions, for the swim lanes. */
export interface Segment {
  at: number;
  primary: MachineState["sides"]["primary"]["health"];
  secondary: MachineState["sides"]["secondary"]["health"];
  active: Side;
  phase: MachineState["phase"];
  blocked: MachineState["blocked"];
}

export interface TargetResult {
  name: string;
  policy: Policy;
  summary: Summary;
  /** Every audit event, seq order (only with `keepTimeline`). */
  events: AuditEvent[];
  /** State change points (only with `keepTimeline`). */
  segments: Segment[];
  final: { activeSide: Side; phase: MachineState["phase"] };
}

export interface VariantResult {
  name: string;
  summary: Summary;
  targets: TargetResult[];
}

export interface SimulationResult {
  from: number;
  until: number;
  /** Inputs replayed and signals no target's matchers took. */
  inputs: { replayed: number; signals: number; unrouted: number };
  variants: VariantResult[];
  problems: InputProblem[];
}

/** One input, parsed and routed once for every variant: the batch each target receives. */
interface Prepared {
  at: number;
  batches: IngestBatch[];
  /** Readiness news (`--not-ready`), for both sides of the target. */
  readiness?: { target: string; state: "ready" | "not-ready"; validUntil: number };
}

/** The machine's failover blockers, plus `quorum` and `stale` (design §10's list of reasons). */
const BLOCK_REASONS = [...BlockerSchema.options, "quorum", "stale"] as const;

function emptySummary(): Summary {
  return {
    failovers: 0,
    failbacks: 0,
    blocked: Object.fromEntries(BLOCK_REASONS.map((r) => [r, 0])),
    approvals: 0,
    downMs: { hold: 0, blocked: 0, approval: 0, failed: 0, steady: 0, total: 0 },
    alerts: 0,
    shortAlerts: 0,
    signals: { accepted: 0, duplicates: 0, ignored: 0 },
  };
}

function addSummary(into: Summary, s: Summary): void {
  into.failovers += s.failovers;
  into.failbacks += s.failbacks;
  for (const [k, v] of Object.entries(s.blocked)) into.blocked[k] = (into.blocked[k] ?? 0) + v;
  into.approvals += s.approvals;
  for (const k of Object.keys(into.downMs) as (keyof DownTime)[]) into.downMs[k] += s.downMs[k];
  into.alerts += s.alerts;
  into.shortAlerts += s.shortAlerts;
  into.signals.accepted += s.signals.accepted;
  into.signals.duplicates += s.signals.duplicates;
  into.signals.ignored += s.signals.ignored;
}

/** Parses and routes every input once (design §4), in replay order. */
function prepare(
  config: WorkerConfig,
  inputs: readonly SimInput[],
  problems: InputProblem[],
): { prepared: Prepared[]; signals: number; unrouted: number } {
  const prepared: Prepared[] = [];
  let signals = 0;
  let unrouted = 0;
  // The same label sets come back all month: route each distinct set once.
  const routeCache = new Map<string, ReturnType<typeof routeLabels>>();
  const route = (labels: Readonly<Record<string, string>>) => {
    const names = Object.keys(labels).sort();
    const key = names.map((k) => `${k}\u0000${labels[k]}`).join("\u0001");
    let routes = routeCache.get(key);
    if (routes === undefined) {
      routes = routeLabels(config, labels);
      routeCache.set(key, routes);
    }
    return routes;
  };
  for (const input of sortInputs(inputs)) {
    // Inputs that name their target: it must be one the config has.
    if ((input.kind === "readiness" || input.kind === "delivery") && !(input.target in config.targets)) {
      problems.push({
        severity: "error",
        origin: input.origin,
        message: `target ${JSON.stringify(input.target)} is not in the config`,
      });
      continue;
    }
    if (input.kind === "readiness") {
      const { target, state, validUntil } = input;
      prepared.push({ at: input.at, batches: [], readiness: { target, state, validUntil } });
      continue;
    }
    if (input.kind === "delivery") {
      signals += 1;
      prepared.push({
        at: input.at,
        batches: [{ target: input.target, receivedAt: input.at, deliveries: [input.delivery], warnings: [] }],
      });
      continue;
    }
    let parsedSignals: Signal[];
    let warnings: IngestWarning[] = [];
    if (input.source === "alertmanager") {
      const parsed = parseAlertmanager(input.body, input.at);
      if (!parsed.ok) {
        problems.push({
          severity: "error",
          origin: input.origin,
          message: `the Alertmanager body is invalid: ${parsed.errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`,
        });
        continue;
      }
      parsedSignals = parsed.signals;
      warnings = parsed.warnings;
    } else {
      const parsed = parseNagios(input.body, input.at);
      if (!parsed.ok) {
        problems.push({
          severity: "error",
          origin: input.origin,
          message: `the Nagios body is invalid: ${parsed.errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`,
        });
        continue;
      }
      parsedSignals = [parsed.signal];
    }
    // The same grouping as worker/http/ingest/routes.ts `deliver`: one batch per target.
    const perTarget = new Map<string, Delivery[]>();
    for (const signal of parsedSignals) {
      signals += 1;
      const routes = route(signal.labels);
      if (routes.length === 0) unrouted += 1;
      for (const { target, side } of routes) {
        const list = perTarget.get(target) ?? [];
        list.push({ side, signal });
        perTarget.set(target, list);
      }
    }
    const batches = [...perTarget.keys()]
      .sort()
      .map((target) => ({ target, receivedAt: input.at, deliveries: perTarget.get(target) ?? [], warnings }));
    if (batches.length > 0) prepared.push({ at: input.at, batches });
  }
  return { prepared, signals, unrouted };
}

/** A simulated agent event: the delivery result, the `running` report, the final report. */
interface AgentEvent {
  at: number;
  order: number;
  run: (t: TargetRun, now: number) => Step;
}

/** One target within one variant: the replayed object, its alarm, its agent and its statistics. */
class TargetRun {
  readonly replay: ReplayTarget;
  alarm: number | null = null;
  readonly agent: AgentEvent[] = [];
  readonly dispatched = new Set<string>();
  readonly summary = emptySummary();
  readonly events: AuditEvent[] = [];
  readonly segments: Segment[] = [];
  /** Firing alerts that started on the then-active side: key → incident. */
  private readonly openAlerts = new Map<string, string>();
  private last: Segment;
  private lastAt: number;

  readonly name: string;
  readonly policy: Policy;
  private readonly keep: boolean;

  constructor(name: string, policy: Policy, target: WorkerTarget, from: number, keep: boolean) {
    this.name = name;
    this.policy = policy;
    this.keep = keep;
    // The configured target with the variant's policy; drills are cron-driven, never replayed.
    this.replay = new ReplayTarget(name, { policy, initialActiveSide: target.initialActiveSide, sides: target.sides });
    this.last = this.segment(from);
    this.lastAt = from;
    if (keep) this.segments.push(this.last);
  }

  private segment(at: number): Segment {
    const m = this.replay.machine;
    return {
      at,
      primary: m.sides.primary.health,
      secondary: m.sides.secondary.health,
      active: m.activeSide,
      phase: m.phase,
      blocked: m.blocked,
    };
  }

  /** Adds the time since the last change to the bucket the last state belongs to. */
  account(now: number): void {
    const s = this.last;
    const ms = now - this.lastAt;
    this.lastAt = now;
    if (ms <= 0 || s[s.active] !== "down") return;
    const d = this.summary.downMs;
    if (s.phase === "executing") return;
    if (s.phase === "pending") {
      if (s.blocked === null) d.hold += ms;
      else d.blocked += ms;
    } else if (s.phase === "awaiting_approval") d.approval += ms;
    else if (s.phase === "failed") d.failed += ms;
    else d.steady += ms;
    d.total += ms;
  }

  /** Records a step: events, statistics, the next alarm and the simulated agent's reactions. */
  absorb(step: Step, now: number, actionSeconds: number, order: () => number): void {
    this.account(now);
    for (const e of step.events) this.count(e);
    if (this.keep) this.events.push(...step.events);
    for (const effect of step.effects) this.effect(effect, now, actionSeconds, order);
    const seg = this.segment(now);
    const l = this.last;
    if (
      seg.primary !== l.primary ||
      seg.secondary !== l.secondary ||
      seg.active !== l.active ||
      seg.phase !== l.phase ||
      seg.blocked !== l.blocked
    ) {
      this.last = seg;
      if (this.keep) this.segments.push(seg);
    }
  }

  private count(e: AuditEvent): void {
    const s = this.summary;
    const d = e.detail;
    switch (e.type) {
      case "action.dispatched":
        if (d.dryRun !== true && d.kind === "failover") s.failovers += 1;
        if (d.dryRun !== true && d.kind === "failback") s.failbacks += 1;
        break;
      case "failover.blocked":
        if (typeof d.blocker === "string") s.blocked[d.blocker] = (s.blocked[d.blocker] ?? 0) + 1;
        break;
      case "both-sides-down":
        s.blocked["both-sides-down"] = (s.blocked["both-sides-down"] ?? 0) + 1;
        break;
      case "side.health-changed":
        // Fresh signals firing below quorum on the active side: down with a lower quorum, not a
        // trigger here. (Unknown with only stale signals is counted as `stale`, below.)
        if (
          d.active === true &&
          d.health === "unknown" &&
          Array.isArray(d.firingSources) &&
          d.firingSources.length + (Array.isArray(d.heldSources) ? d.heldSources.length : 0) > 0
        ) {
          s.blocked.quorum = (s.blocked.quorum ?? 0) + 1;
        }
        break;
      case "signal.stale":
        s.blocked.stale = (s.blocked.stale ?? 0) + 1;
        break;
      case "approval.requested":
        s.approvals += 1;
        break;
    }
  }

  private effect(effect: Effect, now: number, actionSeconds: number, order: () => number): void {
    if (effect.type === "setTimer") {
      this.alarm = effect.at;
      return;
    }
    if (effect.type === "probe") {
      // The machine probes only an agent it holds silent, and a silent agent does not answer.
      const agent = effect.agent;
      this.agent.push({ at: now, order: order(), run: (t, at) => t.replay.probeResult(agent, false, at) });
      return;
    }
    if (effect.type !== "dispatch") return;
    const r = effect.request;
    // The agent is idempotent: a re-sent id is the same action.
    if (this.dispatched.has(r.id)) return;
    this.dispatched.add(r.id);
    const report = (status: ActionReport["status"], at: number) => simulatedAgentReport(r, status, at);
    this.agent.push(
      { at: now, order: order(), run: (t, at) => t.replay.dispatchResult(r.id, true, at) },
      { at: now, order: order(), run: (t, at) => t.replay.report(report("running", at), at) },
      {
        at: now + actionSeconds * 1000,
        order: order(),
        run: (t, at) => t.replay.report(report("succeeded", at), at),
      },
    );
  }

  /**
   * Alerts that fired on the side active at the time they started, once they resolve: with the
   * duration of each, the ones shorter than the hold are the failovers the hold saved.
   */
  countAlerts(): void {
    for (const { before, after } of this.replay.lastChanges) {
      if (
        after.status === "firing" &&
        !after.soft &&
        (before?.incident !== after.incident || before.status !== "firing")
      ) {
        if (after.side === this.replay.machine.activeSide) this.openAlerts.set(after.key, after.incident);
        else this.openAlerts.delete(after.key);
        continue;
      }
      if (after.status !== "resolved" || !before || before.status !== "firing") continue;
      if (this.openAlerts.get(after.key) !== after.incident) continue;
      this.openAlerts.delete(after.key);
      this.summary.alerts += 1;
      if (after.at - before.at < this.policy.holdSeconds * 1000) this.summary.shortAlerts += 1;
    }
  }

  /** The earliest simulated agent event or alarm, or null. */
  nextDue(): number | null {
    let next = this.alarm;
    for (const a of this.agent) if (next === null || a.at < next) next = a.at;
    return next;
  }
}

/** One policy variant over the prepared inputs. */
function runVariant(
  config: WorkerConfig,
  policies: Record<string, Policy>,
  prepared: readonly Prepared[],
  opts: { from: number; until: number; actionSeconds: number; keep: boolean; silences: readonly AgentSilence[] },
): TargetResult[] {
  let seq = 0;
  const order = () => ++seq;
  const runs = new Map<string, TargetRun>();
  const liveness = livenessInputs(opts.silences, config);
  for (const name of Object.keys(policies).sort()) {
    const policy = policies[name];
    const target = config.targets[name];
    if (!policy || !target) continue;
    const run = new TargetRun(name, policy, target, opts.from, opts.keep);
    // Told to every target, as the agent's object tells each one it serves; the machine keeps
    // only news of an agent its sides name.
    for (const l of liveness) {
      run.agent.push({
        at: l.at,
        order: order(),
        run: (t, at) => t.replay.agentLiveness(l.agent, l.silent, l.at, l.lastHeardAt, at),
      });
    }
    runs.set(name, run);
  }
  const list = [...runs.values()];

  /** Fires every agent event and alarm due at or before `t`, earliest first. */
  const advance = (t: number) => {
    let guard = 0;
    let lastAt = Number.NaN;
    for (;;) {
      let best: TargetRun | null = null;
      let bestAt = Number.POSITIVE_INFINITY;
      for (const run of list) {
        const due = run.nextDue();
        if (due !== null && due < bestAt) {
          best = run;
          bestAt = due;
        }
      }
      if (best === null || bestAt > t) return;
      // An alarm that keeps asking for the same instant without progress would spin forever
      // (a DO would re-fire it); the machine never does this, and the guard keeps it that way.
      guard = bestAt === lastAt ? guard + 1 : 0;
      lastAt = bestAt;
      if (guard > 1000)
        throw new Error(`simulate: ${best.name} keeps asking for an alarm at ${new Date(bestAt).toISOString()}`);
      const now = Math.max(bestAt, opts.from);
      const run = best;
      let agentIndex = -1;
      run.agent.forEach((a, i) => {
        const cur = run.agent[agentIndex];
        if (a.at <= bestAt && (!cur || a.at < cur.at || (a.at === cur.at && a.order < cur.order))) agentIndex = i;
      });
      if (agentIndex >= 0) {
        const [event] = run.agent.splice(agentIndex, 1);
        if (event) run.absorb(event.run(run, now), now, opts.actionSeconds, order);
      } else {
        run.alarm = null;
        run.absorb(run.replay.timer(now), now, opts.actionSeconds, order);
      }
    }
  };

  for (const p of prepared) {
    if (p.at > opts.until) break;
    advance(p.at);
    const news = p.readiness;
    const readinessRun = news ? runs.get(news.target) : undefined;
    if (news && readinessRun) {
      for (const side of ["primary", "secondary"] as const) {
        const step = readinessRun.replay.readiness(side, news.state, news.validUntil, p.at);
        readinessRun.absorb(step, p.at, opts.actionSeconds, order);
      }
    }
    for (const batch of p.batches) {
      const run = runs.get(batch.target);
      if (!run) continue;
      const step = run.replay.ingest(batch, p.at);
      run.summary.signals.accepted += step.result.accepted;
      run.summary.signals.duplicates += step.result.duplicates;
      run.summary.signals.ignored += step.result.ignored;
      run.countAlerts();
      run.absorb(step, p.at, opts.actionSeconds, order);
    }
  }
  advance(opts.until);
  for (const run of list) run.account(opts.until);
  return list.map((run) => ({
    name: run.name,
    policy: run.policy,
    summary: run.summary,
    events: run.events,
    segments: run.segments,
    final: { activeSide: run.replay.machine.activeSide, phase: run.replay.machine.phase },
  }));
}

/**
 * Replays `inputs` under every variant of `opts.variants`. Inputs that cannot be parsed are
 * listed in `problems` and skipped; a variant the policy schema refuses throws (a usage error).
 */
export function simulate(inputs: readonly SimInput[], opts: SimulateOptions): SimulationResult {
  const problems: InputProblem[] = [];
  const variants = opts.variants.map((variant) => {
    const v = variantPolicies(opts.config, variant);
    if (!v.ok) throw new SimulateUsageError(v.problems.join("\n"));
    return { variant, policies: v.policies };
  });
  const { prepared, signals, unrouted } = prepare(opts.config, inputs, problems);
  const first = prepared[0]?.at ?? inputs[0]?.at ?? 0;
  const last = prepared.at(-1)?.at ?? first;
  const from = opts.from ?? first;
  // Without an explicit end, an hour after the last input: long enough for holds, approvals and
  // actions that the last signals started to play out.
  const until = opts.until ?? last + 3_600_000;
  const results = variants.map(({ variant, policies }) => {
    const targets = runVariant(opts.config, policies, prepared, {
      from,
      until,
      actionSeconds: opts.actionSeconds,
      keep: opts.keepTimeline ?? true,
      silences: opts.agentSilences ?? [],
    });
    const summary = emptySummary();
    for (const t of targets) addSummary(summary, t.summary);
    return { name: variant.name, summary, targets };
  });
  return { from, until, inputs: { replayed: prepared.length, signals, unrouted }, variants: results, problems };
}

/** A bad `--policy` or config: the whole run cannot start (exit 2). */
export class SimulateUsageError extends Error {
  readonly code = "usage";
}

/**
 * A report of the simulated agent: the action `running` at dispatch, then `succeeded` (the switch
 * done unless a dry run) `actionSeconds` later, with no steps.
 */
export function simulatedAgentReport(request: ActionRequest, status: ActionReport["status"], at: number): ActionReport {
  return {
    actionId: request.id,
    target: request.target,
    status,
    activeSide: status === "succeeded" && !request.dryRun ? request.to : request.from,
    dryRun: request.dryRun,
    steps: [],
    at: new Date(at).toISOString(),
  };
}
