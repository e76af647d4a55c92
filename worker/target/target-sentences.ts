/**
 * What is happening to a target and what happens next, as one sentence for people (design §5b),
 * and one audit event as a timeline sentence (shared with `npm run demo`). Pure: no workerd
 * imports, so the status page, the demo and unit tests use the same words.
 *
 * A sentence is a list of segments: text, or a live time (`until`: a countdown, `since`: a
 * running duration) that the page's script keeps ticking and {@link sentenceText} renders for a
 * given instant.
 */
import { asDetail, describeEvent as sharedSentence, str } from "./sentence-parts.ts";
import type { AuditEvent, TargetView } from "./target-view.ts";

/** A live time in a sentence: a countdown to, or the time elapsed since, an ISO instant. */
export type LiveTime = { until: string } | { since: string };
export type Segment = string | LiveTime;

/** One target's sentence: `state` is its first word ("pending", "blocked", …), repeated in `segments`. */
export interface TargetSentence {
  state: string;
  segments: Segment[];
}

/** The policy fields the sentences quote (a target's configured policy). */
export interface SentencePolicy {
  holdSeconds: number;
  riseSeconds?: number | undefined;
  flap: { windowSeconds: number };
  maxAutoActionsPerDay: number;
  approval: "auto" | "required";
}

/** What the sentences need besides the view: the clock, the policy, facts read from the audit log. */
export interface SentenceContext {
  now: number;
  policy: SentencePolicy;
  /** When flapping latched (the latest `flapping.latched` event), if it is in the events read. */
  flappingSince?: string | null;
  /** The pending approval's kind and destination (the latest `approval.requested`), if known. */
  approval?: { kind: string; from: string; to: string } | null;
}

/** "8 s", "4 min 30 s", "2 h 5 min": a whole-second duration for sentences. */
export function formatSpan(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return s % 60 === 0 ? `${s / 60} min` : `${Math.floor(s / 60)} min ${s % 60} s`;
  const m = Math.floor(s / 60);
  return m % 60 === 0 ? `${m / 60} h` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** "10:02 UTC": a clock time for sentences (UTC, so every operator reads the same time). */
export function clock(iso: string): string {
  return `${iso.slice(11, 16)} UTC`;
}

/** A live time's text at `now`: "22 s" to go (or "0 s"), or "8 s" elapsed. */
export function liveText(t: LiveTime, now: number): string {
  return "until" in t ? formatSpan(Date.parse(t.until) - now) : formatSpan(now - Date.parse(t.since));
}

/** The sentence as plain text at `now` (what the page shows at that instant). */
export function sentenceText(s: TargetSentence, now: number): string {
  return s.segments.map((seg) => (typeof seg === "string" ? seg : liveText(seg, now))).join("");
}

const other = (side: string) => (side === "primary" ? "secondary" : "primary");

/** "10 stable minutes", "90 stable seconds". */
function stableWindow(seconds: number): string {
  return seconds % 60 === 0 ? `${seconds / 60} stable minute${seconds === 60 ? "" : "s"}` : `${seconds} stable seconds`;
}

/** "primary down for 8 s (alertmanager)", or "primary unknown (all signals stale)". */
function sideDown(view: TargetView, side: "primary" | "secondary", since: string | null): Segment[] {
  const s = view.sides[side];
  const fresh = s.firing.filter((f) => !f.stale);
  const sources = [...new Set(fresh.map((f) => f.source))].sort();
  const from = sources.length > 0 ? ` (${sources.join(", ")})` : "";
  if (s.health !== "down") {
    const staleOnly = s.firing.length > 0 && fresh.length === 0;
    return [`${side} ${s.health}${staleOnly ? " (its firing signals are stale)" : ""}`];
  }
  return since === null ? [`${side} down${from}`] : [`${side} down for `, { since }, from];
}

/** The one-line sentence for a target: what is happening and what happens next. */
export function targetSentence(view: TargetView, ctx: SentenceContext): TargetSentence {
  const active = view.activeSide;
  const to = other(active);
  const a = view.action;
  if (!view.configured) {
    return {
      state: "unconfigured",
      segments: [
        "unconfigured: not in the configuration; it takes no automatic action until it is added back (its state is kept)",
      ],
    };
  }
  if (view.phase === "awaiting_approval") {
    const ap = ctx.approval ?? { kind: "failover", from: active, to };
    const deadline = view.approvalDeadline;
    return {
      state: "awaiting approval",
      segments: [
        `awaiting approval: ${ap.kind} ${ap.from} → ${ap.to}; `,
        ...(deadline === null
          ? ["an operator approves or cancels"]
          : [`an operator approves or cancels by ${clock(deadline)} (in `, { until: deadline }, ")"]),
        ", else it expires and nothing switches",
      ],
    };
  }
  if (view.phase === "executing" && a !== null) {
    const what = `${a.dryRun ? "dry-run " : ""}${a.kind} ${a.from} → ${a.to} (${a.id})`;
    const w = a.steps.findIndex((st) => st.status === "waiting");
    const waiting = a.steps[w];
    if (waiting !== undefined && !a.approvals?.some((x) => x.step === waiting.name)) {
      // A plan waits for a person (design §11.2): say who must act, and by when.
      const deadline = waiting.approval?.deadline;
      return {
        state: "executing",
        segments: [
          `executing: ${what}, step ${waiting.name} (${w + 1} of ${a.steps.length}) waits for an operator's approval`,
          ...(deadline === undefined
            ? []
            : [` by ${clock(deadline)} (in `, { until: deadline }, "), else the action fails"]),
        ],
      };
    }
    const i = a.steps.findIndex((st) => st.status === "running");
    const running = a.steps[i];
    const done = a.steps.filter((st) => st.status !== "pending" && st.status !== "running").length;
    const step =
      running !== undefined
        ? [`, step ${running.name} running (${i + 1} of ${a.steps.length}) for `, { since: running.startedAt ?? "" }]
        : a.steps.length > 0
          ? [`, ${done} of ${a.steps.length} steps done`]
          : [a.status === "dispatching" ? ", sending it to the agent" : ", waiting for the agent's first report"];
    if (running !== undefined && running.startedAt === undefined) step.pop();
    return { state: "executing", segments: [`executing: ${what}`, ...step] };
  }
  if (view.phase === "failed") {
    const failedStep = a?.steps.find((st) => st.status === "failed");
    const what = a
      ? `${a.dryRun ? "dry-run " : ""}${a.kind} ${a.from} → ${a.to} (${a.id}) failed`
      : "the action failed";
    const where = failedStep ? ` at step ${failedStep.name}` : "";
    const why = a?.error
      ? ` (${a.error.code}: ${a.error.message})`
      : failedStep?.detail
        ? ` (${failedStep.detail})`
        : "";
    const next = a && !a.dryRun ? `retry it, revert to ${a.from}, or cancel` : "retry it or cancel";
    return {
      state: "failed",
      segments: [`failed: ${what}${where}${why}; automatic action is off until an operator acts: ${next}`],
    };
  }
  // steady or pending: what stands in the way, if anything.
  const activeDown = view.sides[active].health === "down";
  const pending = view.phase === "pending";
  const downSince = pending ? view.pendingSince : null;
  if (view.paused) {
    return {
      state: "paused",
      segments: [
        "paused: automatic action is off until an operator resumes",
        ...(activeDown ? ["; ", ...sideDown(view, active, downSince)] : []),
      ],
    };
  }
  if (view.flapping) {
    const since = ctx.flappingSince ?? null;
    return {
      state: "blocked",
      segments: [
        `blocked: flapping${since ? ` since ${clock(since)}` : ""}; automatic action resumes after ${stableWindow(ctx.policy.flap.windowSeconds)}`,
        ...(activeDown ? ["; ", ...sideDown(view, active, downSince)] : []),
      ],
    };
  }
  if (pending) {
    const down = sideDown(view, active, downSince);
    const holdUntil = view.holdUntil;
    const holding = holdUntil !== null && Date.parse(holdUntil) > ctx.now;
    if (holding || view.blocked === null) {
      const act = ctx.policy.approval === "required" ? `approval requested to fail over to ${to}` : `failover to ${to}`;
      return {
        state: "pending",
        segments: [
          "pending: ",
          ...down,
          "; ",
          ...(holding && holdUntil !== null
            ? [`${act} in `, { until: holdUntil }, " unless it recovers"]
            : [`${act} due now`]),
        ],
      };
    }
    return { state: "blocked", segments: blockedSentence(view, ctx, down) };
  }
  // steady
  const owed = owedSentence(view);
  if (view.blocked === "owed-steps") {
    return {
      state: "blocked",
      segments: [
        `blocked: steady on ${active}; the automatic failback to ${to} waits until the owed steps are done (a manual failback still goes); ${owed}`,
      ],
    };
  }
  const withOwed = (t: TargetSentence): TargetSentence =>
    owed === null ? t : { ...t, segments: [...t.segments, `; ${owed}`] };
  if (view.cooldownUntil !== null && Date.parse(view.cooldownUntil) > ctx.now) {
    return withOwed({
      state: "cooldown",
      segments: [
        `cooldown: steady on ${active} after the last switch; no automatic switch until ${clock(view.cooldownUntil)} (in `,
        { until: view.cooldownUntil },
        ")",
      ],
    });
  }
  if (activeDown && view.dismissed !== null) {
    return {
      state: "steady",
      segments: [
        `steady on ${active}: `,
        ...sideDown(view, active, null),
        `, but the ${view.dismissed.kind} was dismissed for this incident; a new incident starts a new hold`,
      ],
    };
  }
  const otherHealth = view.sides[to].health;
  return withOwed({
    state: "steady",
    segments: [
      `steady on ${active}; `,
      activeDown
        ? `${active} is down`
        : otherHealth === "up"
          ? "both sides up"
          : `${to} is ${otherHealth}, so it is not a failover destination`,
    ],
  });
}

/**
 * "1 step owed: scale-old-primary (cluster old-primary was unreachable); it runs when that cluster
 * answers" (design §11.6), or null when nothing is owed.
 */
export function owedSentence(view: Pick<TargetView, "owed">): string | null {
  const owed = view.owed ?? [];
  if (owed.length === 0) return null;
  const clusters = new Set<string>();
  const steps = owed.map((o) => {
    const cluster = /cluster (\S+) does not answer/.exec(o.detail ?? "")?.[1];
    if (cluster !== undefined) clusters.add(cluster);
    return `${o.step} (${cluster === undefined ? "its cluster" : `cluster ${cluster}`} was unreachable)`;
  });
  const n = owed.length;
  const when =
    clusters.size > 1
      ? "each runs when its cluster answers"
      : `${n === 1 ? "it runs" : "they run"} when that cluster answers`;
  return `${n} step${n === 1 ? "" : "s"} owed: ${steps.join(", ")}; ${when}`;
}

/** The "blocked: …" sentence of a pending target whose hold is over (design §5 rules 2–4, 14). */
function blockedSentence(view: TargetView, ctx: SentenceContext, down: Segment[]): Segment[] {
  const active = view.activeSide;
  const to = other(active);
  const tail: Segment[] = ["; ", ...down];
  switch (view.blocked) {
    case "both-sides-down":
      return [
        `blocked: both sides down; staying on ${active} (never switch to a down side) until one recovers`,
        ...tail,
      ];
    case "other-side-not-up":
      return [`blocked: ${to} is ${view.sides[to].health}, not up; failover waits until it is up`, ...tail];
    case "other-side-stale":
      return [
        `blocked: stale evidence: ${to}'s only firing signals are stale, so its health is unknown; clear them if they are over`,
        ...tail,
      ];
    case "other-side-rising": {
      const rise = ctx.policy.riseSeconds ?? ctx.policy.holdSeconds;
      const upSince = view.sides[to].upSince;
      const at = upSince === null ? null : new Date(Date.parse(upSince) + rise * 1000).toISOString();
      return [
        `blocked: ${to} is rising: up ${upSince ? `since ${clock(upSince)}` : "only recently"}, it must stay up ${rise} s (riseSeconds)`,
        ...(at === null ? [] : ["; failover in ", { until: at }, " if it stays up"]),
        ...tail,
      ];
    }
    case "cooldown":
      return view.cooldownUntil === null
        ? ["blocked: cooldown after the last switch", ...tail]
        : [
            `blocked: cooldown after the last switch until ${clock(view.cooldownUntil)} (in `,
            { until: view.cooldownUntil },
            `); then failover to ${to} if ${active} is still down`,
            ...tail,
          ];
    case "budget":
      return [
        `blocked: the daily budget of ${ctx.policy.maxAutoActionsPerDay} automatic action${ctx.policy.maxAutoActionsPerDay === 1 ? "" : "s"} is spent (${view.autoActionsLast24h} in the last 24 h); a manual failover still works`,
        ...tail,
      ];
    case "agent-silent": {
      const agent = view.agents?.[to].name ?? "its agent";
      return [
        `blocked: ${to}'s agent ${agent} is silent and did not answer the probe; failover goes as soon as it is heard, a manual failover still works`,
        ...tail,
      ];
    }
    case "agent-unfinished": {
      const a = view.action;
      return [
        `blocked: ${a ? `${a.id} on agent ${a.agent ?? "default"}` : "the last action"} has no final report, and ${to} is served by ${view.agents?.[to].name ?? "another agent"}; a confirmed break-glass may send it anyway`,
        ...tail,
      ];
    }
    case "paused":
      return ["blocked: paused; automatic action is off until an operator resumes", ...tail];
    case "owed-steps":
      return [`blocked: ${owedSentence(view) ?? "plan steps are owed"}`, ...tail];
    case "not-ready": {
      const failing =
        view.readiness?.to === to && view.readiness.failing ? ` (${view.readiness.failing.join(", ")})` : "";
      return [
        `blocked: not ready: ${to} was not ready to take over when the hold started${failing}, and policy requireReady is on; a manual failover still works`,
        ...tail,
      ];
    }
    case "flapping":
      return [
        `blocked: flapping; automatic action resumes after ${stableWindow(ctx.policy.flap.windowSeconds)}`,
        ...tail,
      ];
    default:
      return [`pending: failover to ${to} due now`, ...tail];
  }
}

/**
 * One audit event as a timeline sentence, or undefined for events the timeline leaves out: the
 * words of `npm run demo` and `npm run simulate` (worker/target/sentence-parts.ts), plus the events
 * only the status page's timeline shows (commands by identity, flapping, break-glass).
 */
export function describeEvent(e: AuditEvent): string | undefined {
  const d = asDetail(e.detail);
  const by = typeof d.actor === "string" ? ` by ${d.actor}` : "";
  switch (e.type) {
    case "command.accepted":
      // The shared sentence prints the raw detail; on the page, say who did what.
      return `command accepted: ${str(d.command)}${by}${d.force === true ? " (forced)" : ""}`;
    case "command.rejected":
      return `command refused: ${str(d.command)}${by}: ${str(d.reason)}`;
    case "action.failed":
      // The detail carries `code` and `message` (worker/engine/machine-actions.ts).
      return `final report: ${str(d.id)} FAILED: ${str(d.message ?? d.error ?? d.reason ?? "")}`;
    case "flapping.latched":
      return `flapping: ${str(d.transitions)} changes of ${str(d.side)} within ${str(d.windowSeconds)} s; automatic action off`;
    case "flapping.released":
      return `flapping over: ${str(d.side)} stable for ${str(d.stableSeconds)} s`;
    case "breakglass.requested":
      return `break-glass requested: forced ${str(d.command)} by ${str(d.requester)}`;
    case "breakglass.approved":
      return `break-glass confirmed: forced ${str(d.command)} by ${str(d.requester)}, confirmed by ${str(d.approver)}`;
    case "breakglass.cancelled":
      return `break-glass cancelled: forced ${str(d.command)} by ${str(d.requester)}`;
    default:
      return sharedSentence(e);
  }
}
