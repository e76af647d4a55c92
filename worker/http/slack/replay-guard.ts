/**
 * Slack replay protection (design §5b): a verified request whose signature was already seen
 * within its 5-minute window is answered 200 "already handled" and has no effect. `failover`
 * means "switch to the other side", so a captured request replayed would switch back.
 *
 * The seen set lives in this Durable Object's SQLite (one instance, `SLACK_REPLAY_GUARD_NAME`),
 * so it survives isolate restarts and is shared by every isolate; one object serialises the
 * check-and-insert, so two copies racing are one first sight and one replay. Each entry expires
 * with its request's window (the timestamp + 300 s): after that the signature check refuses the
 * request anyway, and an alarm deletes the expired entries.
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../../env.ts";
import { SLACK_TOLERANCE_SECONDS } from "./signature.ts";

/** The one guard object's name (`env.SLACK_REPLAY.getByName(...)`). */
export const SLACK_REPLAY_GUARD_NAME = "slack";

/** When a request signed at `timestampSeconds` stops verifying (ms): the seen entry can go then. */
export function replayWindowEnd(timestampSeconds: number): number {
  return (timestampSeconds + SLACK_TOLERANCE_SECONDS + 1) * 1000;
}

/** The seen set of Slack request signatures, each until its window ends. */
export class ReplayGuard extends DurableObject<Env> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec("CREATE TABLE IF NOT EXISTS seen (signature TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)");
  }

  /**
   * True the first time `signature` is presented; false for every later presentation until
   * `expiresAt` (ms since the epoch). `now` is the caller's clock, so tests need not wait.
   */
  async firstSight(signature: string, expiresAt: number, now: number = Date.now()): Promise<boolean> {
    // No await between the delete, the read and the insert: the object's input gate makes them one step.
    this.sql.exec("DELETE FROM seen WHERE expires_at <= ?", now);
    const inserted = this.sql.exec(
      "INSERT INTO seen (signature, expires_at) VALUES (?, ?) ON CONFLICT (signature) DO NOTHING",
      signature,
      expiresAt,
    ).rowsWritten;
    if (inserted === 0) return false;
    const alarm = await this.ctx.storage.getAlarm();
    if (alarm === null || alarm > expiresAt) await this.ctx.storage.setAlarm(expiresAt);
    return true;
  }

  /** How many signatures are remembered now (tests and diagnostics). */
  async size(): Promise<number> {
    const row = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM seen").one();
    return row.n;
  }

  /** Forgets expired signatures and wakes again for the next to expire. */
  override async alarm(): Promise<void> {
    this.sql.exec("DELETE FROM seen WHERE expires_at <= ?", Date.now());
    const next = this.sql.exec<{ at: number | null }>("SELECT MIN(expires_at) AS at FROM seen").one().at;
    if (next !== null) await this.ctx.storage.setAlarm(next);
  }
}
