/**
 * The last drill rendered for people (design §5b): ISO dates, outcome and recovery times. Pure, so
 * the view types can be shared with Node code (e2e tests, demo) without workerd types.
 */
import type { DrillResult } from "./machine-types.ts";

/** One measured switch of a drill, for people: recovery time in ms and per-step durations. */
export interface DrillSwitchSummary {
  kind: string;
  from: string;
  to: string;
  ok: boolean | null;
  recoveryMs: number | null;
  steps: { name: string; status: string; durationMs: number | null }[];
}

/** The last drill as the status page shows it: ISO dates, outcome and recovery times. */
export interface DrillSummary {
  mode: "dry-run" | "live";
  outcome: DrillResult["outcome"];
  ok: boolean;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  /** Recovery time of each switch (live: fail over, then fail back; dry run: the one action). */
  recoveryMs: (number | null)[];
  switches: DrillSwitchSummary[];
  detail: string;
}

/** Renders the machine's `lastDrill` (epoch ms) for people; null when no drill has run. */
export function drillSummary(last: DrillResult | null | undefined): DrillSummary | null {
  if (!last) return null;
  return {
    mode: last.mode,
    outcome: last.outcome,
    ok: last.ok,
    startedAt: new Date(last.startedAt).toISOString(),
    finishedAt: new Date(last.finishedAt).toISOString(),
    durationMs: last.finishedAt - last.startedAt,
    recoveryMs: last.switches.map((s) => s.recoveryMs),
    switches: last.switches.map((s) => ({
      kind: s.kind,
      from: s.from,
      to: s.to,
      ok: s.ok,
      recoveryMs: s.recoveryMs,
      steps: s.steps,
    })),
    detail: last.detail,
  };
}
