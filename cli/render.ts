/**
 * What the CLI prints for people: aligned tables, one target in detail, audit events as
 * sentences (shared/event-sentences.ts). Reads the operator API's answers loosely (every field
 * optional), so a worker that adds fields never breaks the CLI.
 */
import { eventSentence } from "../shared/event-sentences.ts";
import { type ReadinessLike, readinessNotes, readinessSentence } from "../shared/readiness-sentences.ts";
import { stepDurationMs } from "../shared/step-duration.ts";

export interface StepView {
  name: string;
  status: string;
  startedAt?: string;
  finishedAt?: string;
  detail?: string;
  /** The parallel group of a plan step (design §11.6). */
  group?: string;
  /** A waiting approval step: what it asks, and until when. */
  approval?: { message: string; deadline: string };
}

export interface ActionView {
  id: string;
  kind: string;
  from?: string;
  to?: string;
  dryRun?: boolean;
  status: string;
  steps?: StepView[];
  /** A plan's approved steps, with who approved each and when. */
  approvals?: { step: string; by: string; at: string }[];
  error?: { code: string; message: string };
}

export interface SignalView {
  key: string;
  source: string;
  status?: string;
  soft?: boolean;
  held?: boolean;
  stale?: boolean;
  labels?: Record<string, string>;
  at?: string;
}

export interface SideView {
  health: string;
  upSince?: string | null;
  firing?: SignalView[];
  firingCount?: number;
}

export interface TargetView {
  name: string;
  activeSide: string;
  phase: string;
  paused?: boolean;
  flapping?: boolean;
  cooldownUntil?: string | null;
  pendingSince?: string | null;
  approvalDeadline?: string | null;
  sides?: Record<string, SideView>;
  action?: ActionView | null;
  lastEvents?: EventView[];
  /** The side a failover would go to: ready, not ready, unknown (design §11.3). */
  readiness?: ReadinessLike;
}

export interface EventView {
  seq: number;
  at: string;
  type: string;
  detail: unknown;
  cause?: number | null;
}

/** Rows as columns padded to their widest cell, the header underlined. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** `12 s`, `4 min 3 s`, `2 h 5 min`: a duration for people. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ""}`;
  return `${Math.floor(s / 3600)} h${Math.floor((s % 3600) / 60) ? ` ${Math.floor((s % 3600) / 60)} min` : ""}`;
}

function since(iso: string | null | undefined, now: number): string {
  return iso ? duration(now - Date.parse(iso)) : "";
}

/** What is going on with a target, in a few words: the NOTE column of `turnout status`. */
export function note(t: TargetView, now: number): string {
  const notes: string[] = [];
  if (t.paused) notes.push("paused");
  if (t.flapping) notes.push("flapping");
  if (t.phase === "pending" && t.pendingSince) notes.push(`${t.activeSide} down for ${since(t.pendingSince, now)}`);
  if (t.phase === "awaiting_approval")
    notes.push(
      t.approvalDeadline ? `approve within ${duration(Date.parse(t.approvalDeadline) - now)}` : "approve or cancel",
    );
  const waiting = t.phase === "executing" && t.action ? waitingStep(t.action) : undefined;
  if (waiting) notes.push(`step ${waiting.name} waits for approval`);
  if (t.phase === "failed" && t.action?.error) notes.push(`${t.action.error.code}: retry, revert or cancel`);
  if (t.cooldownUntil) notes.push(`cooldown ${duration(Date.parse(t.cooldownUntil) - now)} left`);
  if (t.readiness?.state === "not-ready") {
    const failing = t.readiness.checks?.filter((c) => c.destination && !c.ok).map((c) => c.name) ?? [];
    notes.push(`not ready to fail over to ${t.readiness.to}${failing.length ? ` (${failing.join(", ")})` : ""}`);
  }
  if (t.readiness?.drift && !t.readiness.drift.ok) notes.push(`${t.readiness.drift.side} drifted`);
  return notes.join("; ");
}

function sideCell(s: SideView | undefined): string {
  if (!s) return "?";
  const n = s.firingCount ?? s.firing?.length ?? 0;
  return n > 0 ? `${s.health} (${n} firing)` : s.health;
}

/** The step a plan waits at for a person, unless it was approved already. */
function waitingStep(a: ActionView): StepView | undefined {
  return a.steps?.find((st) => st.status === "waiting" && !a.approvals?.some((x) => x.step === st.name));
}

function actionCell(a: ActionView | null | undefined): string {
  if (!a) return "-";
  const running = a.steps?.find((st) => st.status === "running");
  const waiting = waitingStep(a);
  const at = waiting ? ` waiting for approval at ${waiting.name}` : running ? ` at ${running.name}` : "";
  return `${a.id} ${a.kind}${a.dryRun ? " (dry run)" : ""} ${a.status}${at}`;
}

/** `turnout status`: one row per target. */
export function statusTable(targets: TargetView[], now: number): string {
  if (targets.length === 0) return "no targets configured";
  return table(
    ["TARGET", "ACTIVE", "PHASE", "PRIMARY", "SECONDARY", "ACTION", "NOTE"],
    targets.map((t) => [
      t.name,
      t.activeSide,
      t.phase,
      sideCell(t.sides?.primary),
      sideCell(t.sides?.secondary),
      actionCell(t.action),
      note(t, now),
    ]),
  );
}

function stepLine(st: StepView, indent = "  "): string {
  const ms = stepDurationMs(st);
  const took = ms === null || st.status === "waiting" ? "" : ` in ${ms} ms`;
  return `${indent}${st.status.padEnd(9)} ${st.name}${took}${st.detail ? `: ${st.detail}` : ""}`;
}

/**
 * A plan's steps in order: a parallel group as a heading with its steps indented under it; a
 * waiting approval step with its message, deadline and the command that approves it.
 */
export function stepLines(a: ActionView, target: string, now: number): string[] {
  const out: string[] = [];
  let group: string | undefined;
  for (const st of a.steps ?? []) {
    if (st.group !== group) {
      group = st.group;
      if (group !== undefined) out.push(`  parallel group ${group}:`);
    }
    out.push(stepLine(st, group === undefined ? "  " : "    "));
    const pad = group === undefined ? "    " : "      ";
    const approved = a.approvals?.find((x) => x.step === st.name);
    if (approved) out.push(`${pad}approved by ${approved.by} at ${approved.at}`);
    else if (st.status === "waiting") {
      if (st.approval) {
        const left = Date.parse(st.approval.deadline) - now;
        out.push(`${pad}waits for approval: ${st.approval.message}`);
        out.push(`${pad}approve before ${st.approval.deadline} (in ${duration(left)}), else the action fails:`);
      }
      out.push(`${pad}  turnout approve ${target} --step ${st.name}`);
    }
  }
  return out;
}

/** `turnout status <target>`: the target's state, sides, action with every step, and recent events. */
export function targetDetail(t: TargetView, now: number): string {
  const out: string[] = [];
  const n = note(t, now);
  out.push(`${t.name}: active side ${t.activeSide}, phase ${t.phase}${n ? ` (${n})` : ""}`);
  for (const side of ["primary", "secondary"]) {
    const s = t.sides?.[side];
    if (!s) continue;
    const up = s.health === "up" && s.upSince ? `, up for ${since(s.upSince, now)}` : "";
    out.push(`${side.padEnd(9)} ${s.health}${up}${side === t.activeSide ? " (active)" : ""}`);
    for (const sig of s.firing ?? []) {
      const flags = [sig.soft ? "SOFT" : "", sig.held ? "held" : "", sig.stale ? "stale" : ""].filter(Boolean);
      out.push(
        `  firing ${sig.source} ${sig.key}${flags.length ? ` [${flags.join(", ")}]` : ""}${sig.at ? ` since ${sig.at}` : ""}`,
      );
    }
    const more = (s.firingCount ?? 0) - (s.firing?.length ?? 0);
    if (more > 0) out.push(`  … and ${more} more firing`);
  }
  if (t.readiness) {
    out.push(`readiness ${readinessSentence(t.readiness)}`);
    for (const n of readinessNotes(t.readiness)) out.push(`  ${n}`);
    for (const c of t.readiness.checks ?? []) {
      const kind = c.destination ? "" : " (advisory)";
      out.push(`  ${c.ok ? "ok    " : "FAILED"} ${c.name}${kind}${c.detail ? `: ${c.detail}` : ""}`);
    }
  }
  const a = t.action;
  if (a) {
    out.push("");
    out.push(
      `action ${a.id}: ${a.kind}${a.from && a.to ? ` ${a.from} → ${a.to}` : ""}${a.dryRun ? " (dry run)" : ""}, ${a.status}`,
    );
    out.push(...stepLines(a, t.name, now));
    if (a.error) out.push(`  error ${a.error.code}: ${a.error.message}`);
  }
  if (t.lastEvents && t.lastEvents.length > 0) {
    out.push("");
    out.push("recent events (newest last; `turnout events <target>` for all):");
    const events = [...t.lastEvents].sort((x, y) => x.seq - y.seq);
    out.push(...events.map(eventLine));
  }
  return out.join("\n");
}

/** One audit event: `#seq  HH:MM:SS.mmm  sentence` (UTC; `turnout events` prints the date when it changes). */
export function eventLine(e: EventView): string {
  const time = e.at.length >= 23 ? e.at.slice(11, 23) : e.at;
  return `#${String(e.seq).padEnd(5)} ${time}  ${eventSentence(e)}`;
}
