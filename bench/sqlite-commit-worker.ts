/**
 * The `sqlite-commit` bench's worker: one SQLite Durable Object that, per RPC call, runs one
 * transaction of a given shape, so that what one committed call costs can be read shape by shape
 * in the same workerd. The shapes are the ingest bench's per-target batch: the storage floor's
 * (read the key's status, upsert the signal) and turnout's, built up one table at a time (the
 * signal's update, then its audit events, then the state row).
 */
import { DurableObject } from "cloudflare:workers";
import { SHAPES, type Shape } from "./sqlite-commit-shapes.ts";

interface Env {
  COMMITS: DurableObjectNamespace<CommitObject>;
}

const LABELS = JSON.stringify({ alertname: "TargetDown", target: "ingest-0", side: "primary", instance: "10.0.0.1" });
const ANNOTATIONS = JSON.stringify({ summary: "the primary side is down" });
/** A state row of the size turnout's is in the ingest bench (about 2.5 KB of JSON). */
const STATE = JSON.stringify({ machine: { pad: "x".repeat(2400) } });

export class CommitObject extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private seq: number;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS signals (key TEXT PRIMARY KEY, side TEXT NOT NULL, status TEXT NOT NULL,
      incident TEXT NOT NULL, at INTEGER NOT NULL, labels TEXT NOT NULL, annotations TEXT NOT NULL, last_seen INTEGER NOT NULL)`);
    this.sql.exec(
      "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, type TEXT NOT NULL, detail TEXT NOT NULL)",
    );
    this.sql.exec("CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY CHECK (id = 1), json TEXT NOT NULL)");
    this.sql.exec("INSERT OR IGNORE INTO state (id, json) VALUES (1, '{}')");
    for (let i = 0; i < 10; i++) {
      this.sql.exec(
        "INSERT OR IGNORE INTO signals VALUES (?, 'primary', 'firing', '', 0, ?, ?, 0)",
        `am:${i}`,
        LABELS,
        ANNOTATIONS,
      );
    }
    this.seq = Number(this.sql.exec("SELECT COALESCE(MAX(seq), 0) AS n FROM events").one().n);
  }

  /** What the object holds: events appended, and whether the state row was written. */
  rows(): { events: number; stateWritten: boolean } {
    const events = Number(this.sql.exec("SELECT COUNT(*) AS n FROM events").one().n);
    const state = String(this.sql.exec("SELECT json FROM state WHERE id = 1").one().json);
    return { events, stateWritten: state === STATE };
  }

  /** One transaction of `shape` on one of ten keys, as one ingest batch of one signal. */
  write(shape: Shape): void {
    this.ctx.storage.transactionSync(() => {
      if (shape === "none") return;
      const seq = ++this.seq;
      const key = `am:${seq % 10}`;
      const incident = `${key}#${seq}`;
      if (shape === "floor") {
        this.sql
          .exec("SELECT key, status FROM signals WHERE key IN (SELECT value FROM json_each(?))", JSON.stringify([key]))
          .toArray();
        this.sql.exec(
          `INSERT INTO signals (key, side, status, incident, at, labels, annotations, last_seen)
             SELECT value->>0, value->>1, value->>2, value->>3, value->>4, '{}', '{}', value->>5 FROM json_each(?) WHERE true
             ON CONFLICT (key) DO UPDATE SET side = excluded.side, status = excluded.status,
               incident = excluded.incident, at = excluded.at, last_seen = excluded.last_seen`,
          JSON.stringify([[key, "primary", "firing", incident, seq, seq]]),
        );
        return;
      }
      this.sql.exec(
        "UPDATE signals SET incident = ?, at = ?, labels = ?, annotations = ?, last_seen = ? WHERE key = ?",
        incident,
        seq,
        LABELS,
        ANNOTATIONS,
        seq,
        key,
      );
      if (shape === "signal") return;
      const detail = JSON.stringify({ key, side: "primary", status: "firing", incident });
      this.sql.exec(
        "INSERT INTO events (seq, at, type, detail) VALUES (?, ?, 'signal.firing', ?), (?, ?, 'side.sources-changed', ?)",
        seq * 2,
        seq,
        detail,
        seq * 2 + 1,
        seq,
        detail,
      );
      if (shape === "signal+events") return;
      this.sql.exec("UPDATE state SET json = ? WHERE id = 1", STATE);
    });
  }
}

export default {
  /**
   * `GET /?shape=S&calls=N`: N calls of shape S to one object, 20 in flight; answers when all
   * committed. `GET /rows?shape=S`: what that object holds (for the bench's own test).
   */
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const shape = url.searchParams.get("shape") as Shape;
    if (!(SHAPES as readonly string[]).includes(shape))
      return new Response(`shape must be one of ${SHAPES.join(", ")}`, { status: 400 });
    const object = env.COMMITS.getByName(shape);
    if (url.pathname === "/rows") return Response.json(await object.rows());
    const calls = Number(url.searchParams.get("calls") ?? 1);
    let sent = 0;
    const lane = async () => {
      while (sent < calls) {
        sent += 1;
        await object.write(shape);
      }
    };
    await Promise.all(Array.from({ length: 20 }, lane));
    return new Response(String(calls));
  },
};
