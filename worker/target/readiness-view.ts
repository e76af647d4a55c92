/**
 * A target's readiness as the worker reads it (design §11.3, §11.6): from what each agent said of
 * it (its mode, its copy of the target's config, its evaluations toward the sides it serves), the
 * readiness of one side, for the view and as the engine's input. Pure: no storage, no clock.
 *
 * - Only the agent a side names speaks for that side.
 * - An agent whose heartbeat mode is not `agents.<name>.mode` makes its sides not ready
 *   (`agent-mode`); one that does not list the target in its heartbeat `targets` makes it not
 *   ready (`agent-lacks-target`): a production agent in the sandbox, or one deployed with an old
 *   config, never looks fine.
 * - Only destination checks decide `ready`, whatever the agent's own `ready` says.
 * - An evaluation older than 2 × `readiness.intervalSeconds`, or none, is `unknown`.
 */
import { z } from "zod";
import { otherSide, SIDES, type Side, SideSchema } from "../../shared/config.ts";
import { type ReadinessCheck, SideReadinessSchema } from "../../shared/protocol.ts";
import type { ParsedMachineInput } from "../engine/machine-types.ts";

/** What one agent last said of one target (kept by the target's object, one row per agent). */
export const AgentReadinessSchema = z
  .object({
    agent: z.string().min(1),
    /** The heartbeat that carried it (its signed time), epoch ms. */
    at: z.number().int(),
    mode: z.enum(["sandbox", "cluster"]),
    /** The sha256 of its copy of the target's config (its heartbeat `targets`); null: it lacks the target. */
    digest: z.string().nullable(),
    /** Its latest evaluations toward the sides it serves. */
    sides: z.partialRecord(SideSchema, SideReadinessSchema),
  })
  .strict();
export type AgentReadiness = z.infer<typeof AgentReadinessSchema>;

/** `readiness` of `GET /v1/targets/:name`: the side a failover would go to. */
export interface ReadinessView {
  to: Side;
  /** The agent that speaks for that side. */
  agent: string;
  state: "ready" | "not-ready" | "unknown";
  /** When it was evaluated (ISO); null: never. */
  at: string | null;
  checks: ReadinessCheck[];
  /** The destination checks that fail (names); present when not ready. */
  failing?: string[];
  /** Whether the active side still matches its state; shown and notified, never acted on. */
  drift?: { side: Side; ok: boolean; detail: string };
  /** Why it is unknown: nothing received, or older than two intervals. */
  unknown?: "none" | "stale";
  /** The agents' sha256 of their copies of the target's config, when two serve it and they differ. */
  configDiffers?: Record<string, string>;
}

/** What the worker needs to read one side: its agent, the mode the config expects of it. */
export interface SideAgent {
  name: string;
  expectedMode: "sandbox" | "cluster";
}

/** The evaluation of one side derived from its agent's report; null when the report says nothing of it. */
export interface DerivedReadiness {
  state: "ready" | "not-ready";
  at: number;
  checks: ReadinessCheck[];
  failing: string[];
  drift?: { ok: boolean; detail: string };
}

/** A check the worker adds itself: about the agent, not the cluster. */
function workerCheck(name: "agent-mode" | "agent-lacks-target", detail: string): ReadinessCheck {
  return { name, ok: false, destination: true, detail };
}

/** Reads `side` from its agent's report (null: nothing said of that side). */
export function deriveSide(report: AgentReadiness | undefined, side: Side, agent: SideAgent): DerivedReadiness | null {
  if (!report || report.agent !== agent.name) return null;
  const entry = report.sides[side];
  const kept = entry?.checks ?? [];
  if (report.mode !== agent.expectedMode) {
    const detail = `agent ${agent.name} runs in ${report.mode} mode, the worker's agents.${agent.name}.mode says ${agent.expectedMode}`;
    const checks = [workerCheck("agent-mode", detail), ...kept];
    return { state: "not-ready", at: report.at, checks, failing: failingOf(checks) };
  }
  if (report.digest === null) {
    const detail = `agent ${agent.name} does not list this target in its heartbeat: its config lacks it`;
    const checks = [workerCheck("agent-lacks-target", detail)];
    return { state: "not-ready", at: report.at, checks, failing: failingOf(checks) };
  }
  if (!entry) return null;
  const failing = failingOf(entry.checks);
  return {
    state: failing.length === 0 ? "ready" : "not-ready",
    at: Date.parse(entry.at),
    checks: entry.checks,
    failing,
    ...(entry.drift ? { drift: { ok: entry.drift.ok, detail: entry.drift.detail } } : {}),
  };
}

/** Only destination checks decide (design §11.3): advisory ones read the side that fails. */
function failingOf(checks: readonly ReadinessCheck[]): string[] {
  return checks.filter((c) => c.destination && !c.ok).map((c) => c.name);
}

/** The engine's input for one side's new evaluation (time is the evaluation's own). */
export function readinessInputOf(
  side: Side,
  derived: DerivedReadiness,
  intervalMs: number,
): Extract<ParsedMachineInput, { type: "readiness" }> {
  return {
    type: "readiness",
    side,
    state: derived.state,
    at: derived.at,
    validUntil: derived.at + 2 * intervalMs,
    failing: derived.failing,
    ...(derived.drift ? { drift: derived.drift } : {}),
  };
}

/** The view's `readiness`: the side that is not active, read from that side's agent's report. */
export function readinessView(
  reports: ReadonlyMap<string, AgentReadiness>,
  activeSide: Side,
  agents: Record<Side, SideAgent>,
  now: number,
  intervalMs: number,
): ReadinessView {
  const to = otherSide(activeSide);
  const agent = agents[to];
  const derived = deriveSide(reports.get(agent.name), to, agent);
  const view: ReadinessView = { to, agent: agent.name, state: "unknown", at: null, checks: [] };
  if (derived) {
    const stale = now - derived.at > 2 * intervalMs;
    view.state = stale ? "unknown" : derived.state;
    view.at = new Date(derived.at).toISOString();
    view.checks = derived.checks;
    if (derived.failing.length > 0) view.failing = derived.failing;
    if (derived.drift) view.drift = { side: activeSide, ...derived.drift };
    if (stale) view.unknown = "stale";
  } else {
    view.unknown = "none";
  }
  const copies = new Map<string, string>();
  for (const side of SIDES) {
    const digest = reports.get(agents[side].name)?.digest;
    if (digest) copies.set(agents[side].name, digest);
  }
  if (new Set(copies.values()).size > 1) view.configDiffers = Object.fromEntries(copies);
  return view;
}
