/**
 * What `npm run simulate` prints (design §10): per variant and target a timeline in the demo's
 * sentences, then one summary row per variant; or the same as JSON. Only virtual times appear,
 * so the same inputs print the same bytes.
 */
import type { Policy } from "../../shared/config.ts";
import { describeEvent } from "../target/sentence-parts.ts";
import type { DownTime, SimulationResult, Summary, TargetResult } from "./engine.ts";
import type { AuditEvent } from "./replay-target.ts";

const iso = (ms: number) => new Date(ms).toISOString();
const minutes = (ms: number) => Math.round(ms / 6000) / 10;

/** The policy keys a reader tunes, as one line. */
export function policyLine(p: Policy): string {
  return [
    `holdSeconds ${p.holdSeconds}`,
    `quorum ${p.quorum}`,
    `cooldownSeconds ${p.cooldownSeconds}`,
    `approval ${p.approval}`,
    `failback ${p.failback}${p.failback === "auto" ? ` after ${p.failbackAfterSeconds} s` : ""}`,
    `flap ${p.flap.maxTransitions}/${p.flap.windowSeconds} s`,
    `maxAutoActionsPerDay ${p.maxAutoActionsPerDay}`,
  ].join(", ");
}

/** One timeline line: the audit event's sentence, with the event itself for scripts. */
export interface TimelineLine {
  at: string;
  seq: number;
  type: string;
  text: string;
  detail: AuditEvent["detail"];
}

/** One target's timeline: its audit events as sentences, in seq order. */
export function timeline(t: TargetResult): TimelineLine[] {
  const out: TimelineLine[] = [];
  for (const e of t.events) {
    const text = describeEvent(e, "simulated");
    if (text !== undefined) out.push({ at: iso(e.at), seq: e.seq, type: e.type, text, detail: e.detail });
  }
  return out;
}

function blockedText(b: Summary["blocked"]): string {
  const parts = Object.entries(b)
    .filter(([, n]) => n > 0)
    .map(([reason, n]) => `${reason} ${n}`);
  return parts.length === 0 ? "none" : parts.join(", ");
}

function downText(d: DownTime): string {
  const parts = (["hold", "blocked", "approval", "failed", "steady"] as const)
    .filter((k) => d[k] > 0)
    .map((k) => `${k} ${minutes(d[k])}`);
  return parts.length === 0 ? "0" : `${minutes(d.total)} (${parts.join(", ")})`;
}

/** Rows as a fixed-width table; the first row is the header. */
function table(rows: string[][], rightAligned: ReadonlySet<number>): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((cell, i) => (rightAligned.has(i) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** The summary table: one row per variant (design §10). */
export function summaryTable(result: SimulationResult): string {
  const header = [
    "variant",
    "failovers",
    "failbacks",
    "blocked (by reason)",
    "approvals asked",
    "active side down, min (while …)",
    "alerts < hold",
  ];
  const rows = result.variants.map((v) => [
    v.name,
    String(v.summary.failovers),
    String(v.summary.failbacks),
    blockedText(v.summary.blocked),
    String(v.summary.approvals),
    downText(v.summary.downMs),
    `${v.summary.shortAlerts} of ${v.summary.alerts}`,
  ]);
  return table([header, ...rows], new Set([1, 2, 4]));
}

/** The whole text report; `quiet` leaves out the timelines. */
export function textReport(result: SimulationResult, options: { quiet: boolean; actionSeconds: number }): string {
  const out: string[] = [];
  const { inputs } = result;
  out.push(
    `turnout simulate: ${iso(result.from)} → ${iso(result.until)}; ${inputs.replayed} deliveries, ${inputs.signals} signals` +
      `${inputs.unrouted > 0 ? ` (${inputs.unrouted} matched no target)` : ""}; ${result.variants.length} variant(s); ` +
      `actions succeed ${options.actionSeconds} s after dispatch`,
  );
  const errors = result.problems.filter((p) => p.severity === "error").length;
  const warnings = result.problems.length - errors;
  if (result.problems.length > 0) {
    // The problems themselves go to stderr; say here that the result leaves something out.
    out.push(`input problems: ${errors} error(s), ${warnings} warning(s) (see stderr); unreadable inputs were skipped`);
  }
  if (!options.quiet) {
    for (const v of result.variants) {
      out.push("", `== ${v.name} ==`);
      for (const t of v.targets) {
        out.push("", `${t.name}: ${policyLine(t.policy)}`);
        const lines = timeline(t);
        if (lines.length === 0) out.push("  (no signals)");
        for (const l of lines) out.push(`  ${l.at}  ${l.text}`);
        out.push(`  → ends ${t.final.phase} on ${t.final.activeSide}`);
      }
    }
  }
  out.push("", "summary", summaryTable(result));
  return `${out.join("\n")}\n`;
}

function summaryJson(s: Summary) {
  const { downMs, ...rest } = s;
  return {
    ...rest,
    downMinutes: Object.fromEntries(Object.entries(downMs).map(([k, v]) => [k, minutes(v)])),
  };
}

/** The same as {@link textReport}, as one JSON document. */
export function jsonReport(result: SimulationResult, options: { quiet: boolean; actionSeconds: number }): string {
  return `${JSON.stringify(
    {
      from: iso(result.from),
      until: iso(result.until),
      actionSeconds: options.actionSeconds,
      inputs: result.inputs,
      problems: result.problems,
      variants: result.variants.map((v) => ({
        name: v.name,
        summary: summaryJson(v.summary),
        targets: v.targets.map((t) => ({
          name: t.name,
          policy: t.policy,
          summary: summaryJson(t.summary),
          final: t.final,
          ...(options.quiet ? {} : { timeline: timeline(t) }),
        })),
      })),
    },
    null,
    2,
  )}\n`;
}
