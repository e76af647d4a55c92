/**
 * What the operator API, Slack and the status page show of a target (design §3). Types only, with
 * no workerd imports, so Node code (e2e tests, the demo, benches) can share them.
 */
import type { Side } from "../../shared/config.ts";
import type { DrillSummary } from "../engine/drill-summary.ts";
import type { machineView } from "../engine/machine.ts";
import type { CommandName } from "../engine/machine-types.ts";
import type { Health, Json } from "../engine/signals.ts";
import type { ReadinessView } from "./readiness-view.ts";

/** One audit event as the operator API shows it (design §3). */
export interface AuditEvent {
  seq: number;
  /** ISO 8601. */
  at: string;
  type: string;
  detail: Json;
  cause: number | null;
}

/** A stored signal as the operator API shows it (times ISO 8601). */
export interface SignalView {
  key: string;
  source: string;
  side: Side;
  status: string;
  soft: boolean;
  held: boolean;
  /** Firing but not seen for `policy.staleAfterSeconds`: no longer down evidence (design §4). */
  stale: boolean;
  incident: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  notices: Json;
  at: string;
  receivedAt: string;
  firstSeen: string;
  lastSeen: string;
}

/** `GET /v1/targets/:name` (design §3), plus the machine's extra context (approval deadline, last drill). */
export type TargetView = Omit<ReturnType<typeof machineView>, "sides" | "lastDrill"> & {
  name: string;
  /** The last drill with ISO dates, outcome and each switch's recovery time (design §5b). */
  lastDrill: DrillSummary | null;
  /** `firing` lists at most 100 signals per side; `firingCount` counts them all (design §4). */
  sides: Record<Side, { health: Health; upSince: string | null; firing: SignalView[]; firingCount: number }>;
  lastEvents?: AuditEvent[];
  /** The side a failover would go to: ready, not ready (which checks), or unknown (design §11.3). */
  readiness?: ReadinessView;
};

/** A command as the API and Slack send it (design §3 `{command, reason?, force?, key?}`). */
export interface TargetCommand {
  command: CommandName | "clear";
  force?: boolean;
  /** The authenticated identity (design §3a), never a name from a request body. */
  actor?: string;
  /** A request body's `actor`: whom the identity acted for, audited beside it. */
  onBehalfOf?: string;
  reason?: string;
  /** For `clear`: the stored signal's key. */
  key?: string;
  /** For `drill`: `dry-run` (default) or `live`. */
  mode?: "dry-run" | "live";
}

/** What a command did: applied, or refused with the reason the API turns into 409. */
export interface CommandResult {
  applied: boolean;
  rejected?: string;
  /** A command that went with something to know: a silent agent (rule 17), another agent mid-action (§11.6). */
  warnings?: string[];
  view: TargetView;
}

/** Approving a plan step (design §11.2: API `{"command": "approve", "step"}`, Slack, the page). */
export interface StepApprovalInput {
  step: string;
  /** The authenticated identity (API identity, `slack:<user>`, the page's session). */
  actor: string;
  reason?: string;
  /** From a Slack button: the action it was posted for, which must still be the current one. */
  actionId?: string;
}

/**
 * What approving a step did: applied (forwarded and recorded), refused (`rejected`: unknown,
 * not waiting or already approved; 409), or not delivered to the agent (`unavailable`; 503).
 */
export interface StepApprovalResult extends CommandResult {
  unavailable?: string;
  /** How the agent took it: `approved`, or `already` (its 409: approved before, counts as done). */
  forwarded?: "approved" | "already";
}

/** One page of the audit log, oldest first; `next` is absent on the last page. */
export interface EventPage {
  events: AuditEvent[];
  next?: number;
}

/** One `--webhooks` NDJSON line (design §10): a verified ingest body as received. */
export interface RecordingLine {
  /** Receipt time, ISO 8601. */
  at: string;
  source: "alertmanager" | "nagios";
  /** The body as received: a JSON object, or the form string for Nagios. */
  body: Json;
}
