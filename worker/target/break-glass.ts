/**
 * The two-person rule for break-glass (design §3a, §5b): `/turnout failover|failback <target>
 * force <reason>` in Slack, and `force: true` on the API's commands.
 *
 * A forced request does not execute: it is stored as a pending row in the TARGET's own Durable
 * Object (table `slack_break_glass`), and only a click by a different allowed user executes it.
 * Keeping it beside the machine state, rather than in a separate object, is what makes the check
 * and the execution one SQLite transaction: "still pending", "epoch unchanged" and "run the forced
 * command" cannot interleave with another click, an agent report or an automatic action, so two
 * approvers clicking at once still produce exactly one forced action, and a click after the
 * target moved on (a new action bumped the epoch) is refused instead of acting on a situation
 * the requester never saw. This module holds the storage and the pure judgement of a click;
 * worker/target/target-object.ts only wires them into its transaction.
 */
import { z } from "zod";

/** A pending request older than this is stale: the situation it described has likely changed. */
export const BREAK_GLASS_TTL_MS = 15 * 60 * 1000;

/** Idempotent DDL, run by the object on every wake (additive: no schema version bump). */
export const BREAK_GLASS_DDL = `CREATE TABLE IF NOT EXISTS slack_break_glass (
  nonce TEXT PRIMARY KEY,
  command TEXT NOT NULL,
  requester_id TEXT NOT NULL,
  requester TEXT NOT NULL,
  reason TEXT NOT NULL,
  epoch INTEGER NOT NULL,
  phase TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  status TEXT NOT NULL,
  resolved_by TEXT,
  resolved_at INTEGER,
  outcome TEXT
)`;

/** The commands `force` may break glass for (Slack offers failover and failback; the API all four). */
export const BreakGlassCommandSchema = z.enum(["failover", "failback", "approve", "retry"]);
export type BreakGlassCommand = z.infer<typeof BreakGlassCommandSchema>;

/** A request is pending until executed, rejected by the machine, or cancelled. */
export const BreakGlassStatusSchema = z.enum(["pending", "executed", "rejected", "cancelled"]);
export type BreakGlassStatus = z.infer<typeof BreakGlassStatusSchema>;

/** What the slash command asks the object to record. */
export const BreakGlassRequestInputSchema = z
  .object({
    nonce: z.string().regex(/^[0-9a-f]{32}$/),
    command: BreakGlassCommandSchema,
    /** Slack user id of the requester: the approver must differ. */
    requesterId: z.string().min(1),
    /** The audited actor string of the requester, `slack:<id>(<name>)`. */
    requester: z.string().min(1),
    reason: z.string().max(1500),
    /** Where it was asked: Slack posts its own message with buttons; an API request is notified. */
    via: z.enum(["slack", "api"]).optional(),
  })
  .strict();
export type BreakGlassRequestInput = z.infer<typeof BreakGlassRequestInputSchema>;

/** One click on an Approve / Cancel button of a break-glass request. */
export const BreakGlassClickSchema = z
  .object({
    nonce: z.string().min(1),
    decision: z.enum(["approve", "cancel"]),
    actorId: z.string().min(1),
    actor: z.string().min(1),
    /**
     * The epoch carried by a Slack button: a click from an older message must not act now. The
     * API's `confirm` names the request only; the target's own epoch check still applies.
     */
    epoch: z.number().int().min(0).optional(),
  })
  .strict();
export type BreakGlassClick = z.infer<typeof BreakGlassClickSchema>;

/** A stored request. */
export interface BreakGlassRow {
  nonce: string;
  command: BreakGlassCommand;
  requesterId: string;
  requester: string;
  reason: string;
  epoch: number;
  phase: string;
  createdAt: number;
  status: BreakGlassStatus;
  resolvedBy: string | null;
  resolvedAt: number | null;
  outcome: string | null;
}

const RowSchema = z.object({
  nonce: z.string(),
  command: BreakGlassCommandSchema,
  requester_id: z.string(),
  requester: z.string(),
  reason: z.string(),
  epoch: z.number(),
  phase: z.string(),
  created_at: z.number(),
  status: BreakGlassStatusSchema,
  resolved_by: z.string().nullable(),
  resolved_at: z.number().nullable(),
  outcome: z.string().nullable(),
});

/** Records a new pending request at the target's current epoch and phase. */
export function insertBreakGlass(
  sql: SqlStorage,
  input: BreakGlassRequestInput,
  at: { epoch: number; phase: string; now: number },
): void {
  sql.exec(
    `INSERT INTO slack_break_glass (nonce, command, requester_id, requester, reason, epoch, phase, created_at, status)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending')`,
    input.nonce,
    input.command,
    input.requesterId,
    input.requester,
    input.reason,
    at.epoch,
    at.phase,
    at.now,
  );
}

/** The stored request with this nonce, if any. */
export function readBreakGlass(sql: SqlStorage, nonce: string): BreakGlassRow | undefined {
  const raw = sql.exec("SELECT * FROM slack_break_glass WHERE nonce = ?", nonce).toArray()[0];
  return raw ? fromRow(raw) : undefined;
}

/**
 * The requests a second person could still confirm: pending, younger than the TTL and made at the
 * target's current epoch (an older one would be refused as stale), oldest first.
 */
export function openBreakGlassRows(sql: SqlStorage, epoch: number, now: number): BreakGlassRow[] {
  return sql
    .exec(
      "SELECT * FROM slack_break_glass WHERE status = 'pending' AND epoch = ? AND created_at >= ? ORDER BY created_at, nonce",
      epoch,
      now - BREAK_GLASS_TTL_MS,
    )
    .toArray()
    .map(fromRow);
}

function fromRow(raw: Record<string, SqlStorageValue>): BreakGlassRow {
  const r = RowSchema.parse(raw);
  return {
    nonce: r.nonce,
    command: r.command,
    requesterId: r.requester_id,
    requester: r.requester,
    reason: r.reason,
    epoch: r.epoch,
    phase: r.phase,
    createdAt: r.created_at,
    status: r.status,
    resolvedBy: r.resolved_by,
    resolvedAt: r.resolved_at,
    outcome: r.outcome,
  };
}

/** Closes a pending request; only a pending row changes (a second resolution is a no-op). */
export function resolveBreakGlassRow(
  sql: SqlStorage,
  nonce: string,
  status: Exclude<BreakGlassStatus, "pending">,
  by: string,
  now: number,
  outcome: string | null,
): void {
  sql.exec(
    "UPDATE slack_break_glass SET status = ?, resolved_by = ?, resolved_at = ?, outcome = ? WHERE nonce = ? AND status = 'pending'",
    status,
    by,
    now,
    outcome,
    nonce,
  );
}

/** What a click means, decided from the stored row and the target's current epoch. */
export type BreakGlassVerdict =
  | { act: "execute"; row: BreakGlassRow }
  | { act: "cancel"; row: BreakGlassRow }
  | { act: "refuse"; outcome: "unknown" | "already" | "self-approval" | "stale"; detail: string };

/** Judges a click: pure, so every refusal path is testable without an object. */
export function judgeBreakGlassClick(
  row: BreakGlassRow | undefined,
  click: BreakGlassClick,
  epoch: number,
  now: number,
): BreakGlassVerdict {
  if (!row) return { act: "refuse", outcome: "unknown", detail: "this request is not on record (wrong target?)" };
  if (row.status !== "pending") {
    const when = row.resolvedAt === null ? "" : ` at ${new Date(row.resolvedAt).toISOString()}`;
    const what = row.status === "rejected" ? `rejected by the target: ${row.outcome ?? "no reason"}` : row.status;
    return {
      act: "refuse",
      outcome: "already",
      detail: `already done: this request was ${what} by ${row.resolvedBy ?? "someone"}${when}; nothing changed`,
    };
  }
  if (click.decision === "cancel") return { act: "cancel", row };
  if (click.actorId === row.requesterId) {
    return {
      act: "refuse",
      outcome: "self-approval",
      detail: `you requested this forced ${row.command}: a second person must approve it`,
    };
  }
  if ((click.epoch !== undefined && click.epoch !== row.epoch) || epoch !== row.epoch) {
    return {
      act: "refuse",
      outcome: "stale",
      detail: `stale request: the target has moved on since it was made (epoch ${row.epoch} then, ${epoch} now); nothing changed, request again if still needed`,
    };
  }
  if (now - row.createdAt > BREAK_GLASS_TTL_MS) {
    return {
      act: "refuse",
      outcome: "stale",
      detail: `stale request: older than ${BREAK_GLASS_TTL_MS / 60_000} minutes; nothing changed, request again if still needed`,
    };
  }
  return { act: "execute", row };
}

/** The audited reason of the forced command: both people and the requester's words. */
export function breakGlassReason(row: BreakGlassRow, approver: string): string {
  const why = row.reason.trim() === "" ? "no reason given" : row.reason.trim();
  return `break-glass ${row.command} requested by ${row.requester}, approved by ${approver}: ${why}`;
}

/** What `resolveBreakGlass` answers (the view is added by the object). */
export type BreakGlassOutcome =
  | { outcome: "executed"; command: BreakGlassCommand; requester: string; warnings?: string[] }
  | { outcome: "rejected"; command: BreakGlassCommand; requester: string; reason: string }
  | { outcome: "cancelled"; command: BreakGlassCommand; requester: string }
  | { outcome: "unknown" | "already" | "self-approval" | "stale"; detail: string };
