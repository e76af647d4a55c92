/**
 * Incidents, drills and open break-glass requests read from a window of the newest audit events
 * (design §5b status page). Pure, so unit tests and the page share it. An incident is a span
 * from leaving `steady` (hold, approval or a manual switch) to the return to `steady`; drills
 * (dry-run actions and live drills) are listed apart with their recovery times.
 */
import { asDetail } from "./sentence-parts.ts";
import { describeEvent } from "./target-sentences.ts";
import type { AuditEvent, TargetView } from "./target-view.ts";

const text = (v: unknown) => (typeof v === "string" ? v : "");

/** How far before its first phase change an incident's lead-in (the side going down) may lie. */
const LEAD_IN_MS = 6 * 3600_000;

/** One past or ongoing incident. */
export interface Incident {
  start: string;
  /** null while it is still going on. */
  end: string | null;
  /** "failover primary → secondary (egress-gw:3)", or null when no action was taken. */
  action: string | null;
  /** From the start to the switch's final `succeeded` report; null without a switch. */
  recoveryMs: number | null;
  outcome: string;
  /** The incident's events, oldest first (its timeline). */
  events: AuditEvent[];
  /** The id of the (last) action it dispatched, for its steps in the view. */
  actionId: string | null;
  /**
   * Each real action it dispatched (a plan's execution, a retry, a revert), oldest first, with its
   * own recovery time: from dispatch to the final report (null while it runs).
   */
  executions: Execution[];
}

/** One dispatched action of an incident and how long it took, dispatch to final report. */
export interface Execution {
  id: string;
  kind: string;
  outcome: "succeeded" | "failed" | "running";
  recoveryMs: number | null;
}

/** One drill result from `drill.completed` / `drill.aborted`. */
export interface DrillRun {
  at: string;
  mode: string;
  outcome: string;
  /** Recovery time of each switch (live: fail over, fail back; dry run: the one action). */
  recoveryMs: number[];
  detail: string;
}

/** An open break-glass request: forced command, requester, expiry (design §3a). */
export interface BreakGlassRequest {
  id: string;
  command: string;
  requester: string;
  reason: string;
  expiresAt: string;
}

/** The incidents in `events` (oldest first in, newest first out), at most `limit`. */
export function incidentsOf(events: AuditEvent[], limit = 20): Incident[] {
  const out: Incident[] = [];
  let open: { start: string; events: AuditEvent[]; drill: boolean } | null = null;
  const close = (end: string | null) => {
    if (open === null) return;
    if (!open.drill) out.push(summarize(open.start, end, open.events));
    open = null;
  };
  // What happened since the last phase change: the lead-in of the next incident (the side going
  // down, a flapping latch), which the machine audits before the phase changes.
  let lead: AuditEvent[] = [];
  for (const e of events) {
    const d = asDetail(e.detail);
    if (e.type === "phase.changed" && d.from === "steady" && open === null) {
      const leadIn = lead.filter(
        (x) =>
          ((x.type === "side.health-changed" && asDetail(x.detail).health === "down") ||
            x.type === "flapping.latched") &&
          Date.parse(e.at) - Date.parse(x.at) < LEAD_IN_MS,
      );
      open = { start: leadIn[0]?.at ?? e.at, events: leadIn, drill: false };
    }
    if (e.type === "phase.changed") lead = [];
    else if (open === null) lead.push(e);
    if (open === null) continue;
    open.events.push(e);
    // A drill's own action is not an incident (drills are listed apart).
    if (
      e.type === "action.dispatched" &&
      (d.dryRun === true || d.trigger === "drill") &&
      !open.events.some((x) => x.type === "phase.changed" && asDetail(x.detail).to === "pending")
    ) {
      open.drill = true;
    }
    if (e.type === "phase.changed" && d.to === "steady") close(e.at);
  }
  close(null);
  return out.reverse().slice(0, limit);
}

function summarize(start: string, end: string | null, events: AuditEvent[]): Incident {
  const dispatched = events.filter((e) => e.type === "action.dispatched" && asDetail(e.detail).dryRun !== true);
  const last = dispatched.at(-1);
  const ld = asDetail(last?.detail);
  const succeeded = events.find((e) => e.type === "action.succeeded" && asDetail(e.detail).id === ld.id);
  const failed = events.some((e) => e.type === "action.failed" && asDetail(e.detail).id === ld.id);
  const cancel = events.find((e) => e.type === "command.accepted" && asDetail(e.detail).command === "cancel");
  let outcome: string;
  if (succeeded) outcome = `switched to ${text(ld.to)}`;
  else if (end === null) outcome = failed ? "failed: waiting for an operator" : "ongoing";
  else if (cancel)
    outcome = `cancelled${text(asDetail(cancel.detail).actor) ? ` by ${text(asDetail(cancel.detail).actor)}` : ""}`;
  else if (events.some((e) => e.type === "approval.expired")) outcome = "approval expired; nothing switched";
  else if (failed) outcome = "failed";
  else outcome = "recovered without action";
  const executions = dispatched.map((e): Execution => {
    const id = asDetail(e.detail).id;
    const final = events.find(
      (x) => (x.type === "action.succeeded" || x.type === "action.failed") && asDetail(x.detail).id === id,
    );
    return {
      id: text(id),
      kind: text(asDetail(e.detail).kind),
      outcome: final === undefined ? "running" : final.type === "action.succeeded" ? "succeeded" : "failed",
      recoveryMs: final === undefined ? null : Date.parse(final.at) - Date.parse(e.at),
    };
  });
  return {
    start,
    end,
    executions,
    action: last ? `${text(ld.kind)} ${text(ld.from)} → ${text(ld.to)} (${text(ld.id)})` : null,
    recoveryMs: succeeded ? Date.parse(succeeded.at) - Date.parse(start) : null,
    outcome,
    events,
    actionId: last ? text(ld.id) : null,
  };
}

/** The drill results in `events`, newest first. */
export function drillsOf(events: AuditEvent[], limit = 20): DrillRun[] {
  const out: DrillRun[] = [];
  for (const e of events) {
    if (e.type !== "drill.completed" && e.type !== "drill.aborted") continue;
    const d = asDetail(e.detail);
    const switches = Array.isArray(d.switches) ? d.switches.map(asDetail) : [];
    out.push({
      at: e.at,
      mode: text(d.mode),
      outcome: text(d.outcome),
      recoveryMs: switches.map((s) => s.recoveryMs).filter((ms): ms is number => typeof ms === "number"),
      detail: text(d.detail),
    });
  }
  return out.reverse().slice(0, limit);
}

/** The latest `flapping.latched` time and the latest approval request, for the target's sentence. */
export function sentenceFacts(events: AuditEvent[]): {
  flappingSince: string | null;
  approval: { kind: string; from: string; to: string } | null;
} {
  let flappingSince: string | null = null;
  let approval: { kind: string; from: string; to: string } | null = null;
  for (const e of events) {
    const d = asDetail(e.detail);
    if (e.type === "flapping.latched") flappingSince = e.at;
    if (e.type === "flapping.released") flappingSince = null;
    if (e.type === "approval.requested") approval = { kind: text(d.kind), from: text(d.from), to: text(d.to) };
  }
  return { flappingSince, approval };
}

/** One row of an incident timeline: a bar (`end` set) or a mark, with its sentence. */
export interface TimelineRow {
  kind: "signal" | "hold" | "approval" | "decision" | "action" | "step" | "event" | "end";
  label: string;
  start: number;
  /** Absent for a mark; equal to `now` for a span still running. */
  end?: number;
  running?: boolean;
}

/** The incident's timeline: signal → hold → decision → action and each step → end. */
export function timelineOf(incident: Incident, view: TargetView, now: number): TimelineRow[] {
  const rows: TimelineRow[] = [];
  const t = (e: AuditEvent) => Date.parse(e.at);
  const events = incident.events;
  // The span from event `from` to the next event after it (by seq) that `pred` accepts.
  const until = (from: AuditEvent, pred: (e: AuditEvent) => boolean) => {
    const next = events.find((e) => e.seq > from.seq && pred(e));
    return next
      ? { end: t(next) }
      : incident.end === null
        ? { end: now, running: true }
        : { end: Date.parse(incident.end) };
  };
  for (const e of events) {
    const d = asDetail(e.detail);
    const label = describeEvent(e);
    if (label === undefined) continue;
    if (e.type === "phase.changed" && d.to === "pending") {
      rows.push({ kind: "hold", label, start: t(e), ...until(e, (x) => x.type === "phase.changed") });
    } else if (e.type === "phase.changed" && d.to === "awaiting_approval") {
      rows.push({ kind: "decision", label, start: t(e) });
      rows.push({
        kind: "approval",
        label: "waiting for approval",
        start: t(e),
        ...until(e, (x) => x.type === "phase.changed"),
      });
    } else if (e.type === "phase.changed" && d.to === "executing") {
      rows.push({ kind: "decision", label, start: t(e) });
    } else if (e.type === "phase.changed" && d.to === "steady") {
      rows.push({ kind: "end", label, start: t(e) });
    } else if (e.type === "action.dispatched") {
      const id = d.id;
      rows.push({
        kind: "action",
        label,
        start: t(e),
        ...until(
          e,
          (x) => (x.type === "action.succeeded" || x.type === "action.failed") && asDetail(x.detail).id === id,
        ),
      });
      if (view.action && view.action.id === id) {
        for (const st of view.action.steps) {
          if (!st.startedAt) continue;
          const start = Date.parse(st.startedAt);
          const running = st.status === "running" || !st.finishedAt;
          rows.push({
            kind: "step",
            label: `step ${st.name} ${st.status}${st.detail ? `: ${st.detail}` : ""}`,
            start,
            end: running ? Math.max(start, now) : Date.parse(st.finishedAt ?? st.startedAt),
            ...(running ? { running: true } : {}),
          });
        }
      }
    } else if (e.type === "side.health-changed" || e.type === "signal.firing") {
      rows.push({ kind: "signal", label, start: t(e) });
    } else if (e.type !== "action.delivered" && e.type !== "phase.changed") {
      rows.push({ kind: "event", label, start: t(e) });
    }
  }
  return rows;
}
