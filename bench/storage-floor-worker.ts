/**
 * The ingest benchmark's storage floor: the least durable work turnout's ingest job needs, so that
 * `bench/ingest.ts` can state turnout's cost as a ratio against an honest anchor in the same
 * workerd. It accepts the webhook as turnout does (bearer token, turnout's Alertmanager parser,
 * the same routing of each alert to its target and side with worker/engine/routing.ts), makes one
 * RPC per target touched, and in that target's SQLite Durable Object runs one transaction that
 * upserts each signal with its last-seen time and appends one audit row per signal whose status
 * changed. Nothing else: no dedupe or ordering rules, no state row, no decision, no alarm.
 */
import { DurableObject } from "cloudflare:workers";
import { Hono } from "hono";
import { requireConfig } from "../worker/config.ts";
import { routeLabels } from "../worker/engine/routing.ts";
import type { Delivery, IngestBatch, IngestResult } from "../worker/engine/signals.ts";
import type { Env } from "../worker/env.ts";
import { requireBearer } from "../worker/http/auth.ts";
import { parseAlertmanager } from "../worker/http/ingest/alertmanager.ts";
import { Problem, parseJsonOrProblem, problemResponse } from "../worker/problem.ts";

const DDL = [
  "CREATE TABLE IF NOT EXISTS signals (key TEXT PRIMARY KEY, side TEXT NOT NULL, status TEXT NOT NULL, incident TEXT NOT NULL, at INTEGER NOT NULL, last_seen INTEGER NOT NULL)",
  "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, type TEXT NOT NULL, detail TEXT NOT NULL)",
];

// One statement each, over the batch as a JSON array, as turnout's SqlTargetStore writes: the
// floor is not slowed by a statement per signal that turnout itself does not make.
const READ_STATUS = "SELECT key, status FROM signals WHERE key IN (SELECT value FROM json_each(?))";
const UPSERT = `INSERT INTO signals (key, side, status, incident, at, last_seen)
  SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5 FROM json_each(?) WHERE true
  ON CONFLICT (key) DO UPDATE SET side = excluded.side, status = excluded.status,
    incident = excluded.incident, at = excluded.at, last_seen = excluded.last_seen`;
const APPEND = "INSERT INTO events (at, type, detail) SELECT value->>0, value->>1, value->>2 FROM json_each(?)";

/** Named as turnout's class, so the same `TARGETS` binding (and the worker's types) apply. */
export class TargetObject extends DurableObject<Env> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    for (const ddl of DDL) this.sql.exec(ddl);
  }

  /** Upserts every delivered signal and audits each whose status changed, in one transaction. */
  async ingest(batch: IngestBatch): Promise<IngestResult> {
    return this.ctx.storage.transactionSync(() => {
      const keys = batch.deliveries.map((d) => d.signal.key);
      const before = new Map<string, string>();
      for (const row of this.sql.exec(READ_STATUS, JSON.stringify(keys)))
        before.set(String(row.key), String(row.status));
      const rows = batch.deliveries.map(({ side, signal: s }) => [
        s.key,
        side,
        s.status,
        s.incident,
        s.at,
        batch.receivedAt,
      ]);
      this.sql.exec(UPSERT, JSON.stringify(rows));
      const changed = batch.deliveries.filter((d) => before.get(d.signal.key) !== d.signal.status);
      if (changed.length > 0) {
        const events = changed.map(({ side, signal: s }) => [
          batch.receivedAt,
          `signal.${s.status}`,
          JSON.stringify({ key: s.key, side, status: s.status, incident: s.incident }),
        ]);
        this.sql.exec(APPEND, JSON.stringify(events));
      }
      return { accepted: changed.length, duplicates: batch.deliveries.length - changed.length, ignored: 0 };
    });
  }
}

const app = new Hono<{ Bindings: Env }>();

app.get("/healthz", (c) => c.json({ ok: true }));

app.post("/v1/alertmanager", requireBearer("ALERTMANAGER_TOKEN"), async (c) => {
  const config = requireConfig(c.env);
  const body = parseJsonOrProblem(await c.req.text(), "the Alertmanager body");
  const receivedAt = Date.now();
  const parsed = parseAlertmanager(body, receivedAt);
  if (!parsed.ok)
    throw new Problem("validation", "the Alertmanager body is invalid; see errors", { errors: parsed.errors });
  const perTarget = new Map<string, Delivery[]>();
  for (const signal of parsed.signals) {
    for (const { target, side } of routeLabels(config, signal.labels)) {
      const list = perTarget.get(target) ?? [];
      list.push({ side, signal });
      perTarget.set(target, list);
    }
  }
  const results = await Promise.all(
    [...perTarget].map(([target, deliveries]) =>
      c.env.TARGETS.getByName(target).ingest({ target, receivedAt, deliveries }),
    ),
  );
  return c.json({ accepted: results.reduce((n, r) => n + r.accepted, 0), targets: [...perTarget.keys()].sort() });
});

app.onError((err) => problemResponse(err instanceof Problem ? err : new Problem("internal", String(err))));

export default { fetch: app.fetch };
