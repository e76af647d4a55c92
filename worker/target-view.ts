/**
 * What the operator API, Slack and the status page show of a target (design §3). Types only, with
 * no workerd imports, so Node code (e2e tests, the demo, benches) can share them.
 */
import type { Side } from "../shared/config.ts";
import type { DrillSummary } from "./drill-summary.ts";
import type { machineView } from "./machine.ts";
import type { CommandName } from "./machine-types.ts";
import type { Health, Json } from "./signals.ts";

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
  sides: Record<Side, { health: Health; upSince: string | null; firing: SignalView[] }>;
  lastEvents?: AuditEvent[];
};

/** A command as the API and Slack send it (design §3 `{command, reason?, actor?}` plus `force`). */
export interface TargetCommand {
  command: CommandName;
  force?: boolean;
  actor?: string;
  reason?: string;
  /** For `drill`: `dry-run` (default) or `live`. */
  mode?: "dry-run" | "live";
}

/** What a command did: applied, or refused with the reason the API turns into 409. */
export interface CommandResult {
  applied: boolean;
  rejected?: string;
  view: TargetView;
}

/** One page of the audit log, oldest first; `next` is absent on the last page. */
export interface EventPage {
  events: AuditEvent[];
  next?: number;
}
