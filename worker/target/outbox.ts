/**
 * Durable delivery of pages and outgoing events (design §11.4, §11.6), in the target object's own
 * SQLite: what a transaction decided to send is queued IN that transaction (so an eviction right
 * after the commit loses nothing) and sent after it, never before: a pager that is down cannot
 * delay a decision.
 *
 * - One FIFO per sink (`pagerduty`, `opsgenie`, `webhook:<url>`), each drained by its own loop, so
 *   a dead webhook never delays PagerDuty. Within a sink only the head is tried: events arrive in
 *   the order they happened.
 * - Each call has a time budget ({@link fetchWithin}); a failure is audited (`notify.failed`) and
 *   the head retried from the object's alarm with exponential backoff (2 s doubling, at most
 *   5 min apart). After an hour, or at once on an answer that says the request itself is wrong (a
 *   4xx but 408/429 from PagerDuty or Opsgenie), it is dropped: `notify.dropped` audited and
 *   posted to Slack.
 * - A trigger still queued when its resolve is queued is dropped with it: nobody needs to be
 *   woken for something already over.
 * - The alarm is shared with the decision engine: the object arms it at the earlier of the
 *   machine's next deadline and {@link Outbox.nextAt}.
 */
import { DEFAULT_SEVERITY, type Notify, notifyFor, severityOf } from "../../shared/notify-config.ts";
import { fetchWithin } from "../agents/fetch-within.ts";
import type { MachineState } from "../engine/machine.ts";
import type { AuditEvent } from "../engine/machine-types.ts";
import type { Json } from "../engine/signals.ts";
import {
  clearPage,
  expirePages,
  type OpenPage,
  type PageIntent,
  type PagingState,
  pagesFor,
  raisePage,
} from "./paging.ts";
import {
  cloudEventBody,
  httpRequest,
  opsgenieRequest,
  pagerDutyEvent,
  type QueuedRequest,
  SinkGoneError,
} from "./paging-requests.ts";

/** Idempotent DDL, run on every wake (additive tables: no schema version bump). */
export const OUTBOX_DDL = [
  `CREATE TABLE IF NOT EXISTS outbox (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     sink TEXT NOT NULL,
     kind TEXT NOT NULL,
     key TEXT NOT NULL,
     body TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     next_at INTEGER NOT NULL,
     attempts INTEGER NOT NULL DEFAULT 0
   )`,
  "CREATE INDEX IF NOT EXISTS outbox_by_sink ON outbox (sink, id)",
  "CREATE INDEX IF NOT EXISTS outbox_by_key ON outbox (key, sink, kind)",
  `CREATE TABLE IF NOT EXISTS paging_open (
     key TEXT PRIMARY KEY,
     kind TEXT NOT NULL,
     opened_at INTEGER NOT NULL,
     expires_at INTEGER
   )`,
];

/** How long one delivery may take (a sink that hangs holds only its own queue, this long). */
export const DELIVERY_BUDGET_MS = 5_000;
/** An event still failing this long after it was queued is dropped. */
export const DROP_AFTER_MS = 3600_000;
const BACKOFF_FIRST_MS = 2_000;
const BACKOFF_MAX_MS = 300_000;

/** The retry delay after the `attempts`-th failure. */
export function backoffMs(attempts: number): number {
  return Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.max(0, attempts - 1));
}

/** What the outbox needs from its Durable Object. */
export interface OutboxHost {
  sql: SqlStorage;
  now(): number;
  /** The global and the target's own `notify`, and the status page, from the config in force. */
  config(target: string): { global?: Notify | undefined; target?: Notify | undefined; statusUrl?: string | undefined };
  /** A Worker secret by name. */
  secret(name: string): string | undefined;
  /** Appends one audit event in its own transaction (the outbox's own failures). */
  audit(target: string, type: string, detail: Record<string, Json>): void;
  /** Posts a notification to Slack (a dropped event). */
  slack(target: string, text: string): void;
  /** Makes sure the alarm fires no later than `at`. */
  arm(at: number): void;
  waitUntil(p: Promise<unknown>): void;
}

/** Test seam: a shorter delivery budget, so a hanging receiver costs a test milliseconds. */
export const outboxTesting: { budgetMs?: number } = {};

interface Row {
  id: number;
  sink: string;
  kind: string;
  key: string;
  body: string;
  createdAt: number;
  nextAt: number;
  attempts: number;
}

type Outcome = { ok: true } | { ok: false; retry: boolean; error: string };

export class Outbox {
  private readonly host: OutboxHost;
  /** The row each sink's loop is sending now (never dropped under it by a resolve). */
  private readonly sending = new Map<string, number>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  /** Earliest time something is due (undefined: not known since the last change or wake). */
  private next: number | null | undefined;
  /** Rows were queued since the last kick (or unknown, after a wake). */
  private dirty = true;

  constructor(host: OutboxHost) {
    this.host = host;
    for (const ddl of OUTBOX_DDL) host.sql.exec(ddl);
  }

  /** Forgets what this instance cached (after a rolled-back transaction). */
  forget(): void {
    this.next = undefined;
    this.dirty = true;
  }

  /**
   * Queues what one transaction means for the sinks: every event to each webhook, and the pages
   * it opened or closed to PagerDuty and Opsgenie. Call inside the transaction, after its writes.
   */
  capture(target: string, events: readonly AuditEvent[], machine: MachineState | null, now: number): void {
    const cfg = this.host.config(target);
    const sinks = notifyFor(cfg.global, cfg.target);
    if (sinks.pagerduty || sinks.opsgenie) {
      const due = this.next !== undefined && this.next !== null && this.next <= now;
      if (events.length > 0 || due || this.next === undefined) {
        const pages = this.withPaging((paging) => [
          ...expirePages(target, paging, now),
          ...(machine && events.length > 0 ? pagesFor(target, events, machine, paging, now) : []),
        ]);
        for (const page of pages) this.queuePage(target, sinks, cfg.statusUrl, page, now);
      }
    }
    for (const hook of sinks.webhooks ?? []) {
      const sink = `webhook:${hook.url}`;
      for (const e of events) {
        // An event about this very sink's failure would queue behind the failing head forever.
        if ((e.type === "notify.failed" || e.type === "notify.dropped") && e.detail.sink === sink) continue;
        const id = `${target}:${e.seq}`;
        this.insert(sink, "event", id, { sink: "webhook", id, body: cloudEventBody(target, e) }, now);
      }
    }
  }

  /**
   * Opens or closes a page that is not the machine's (agent silent, readiness lost): once per
   * key, whatever the number of calls. Call inside a transaction.
   */
  page(target: string, intent: PageIntent): void {
    const cfg = this.host.config(target);
    const sinks = notifyFor(cfg.global, cfg.target);
    if (!sinks.pagerduty && !sinks.opsgenie) return;
    const now = this.host.now();
    const pages = this.withPaging((paging) =>
      intent.action === "trigger"
        ? raisePage(paging, intent)
        : clearPage(paging, intent.key, intent.summary, intent.at),
    );
    for (const page of pages) this.queuePage(target, sinks, cfg.statusUrl, page, now);
  }

  /** When the alarm must fire next for the outbox (a head's retry, a page's expiry); null: never. */
  nextAt(): number | null {
    if (this.next !== undefined) return this.next;
    const sql = this.host.sql;
    const head = sql
      .exec("SELECT MIN(next_at) AS t FROM outbox WHERE id IN (SELECT MIN(id) FROM outbox GROUP BY sink)")
      .toArray()[0];
    const expiry = sql.exec("SELECT MIN(expires_at) AS t FROM paging_open").toArray()[0];
    const times = [head?.t, expiry?.t].filter((t) => t !== null && t !== undefined).map(Number);
    this.next = times.length === 0 ? null : Math.min(...times);
    return this.next;
  }

  /** Whether something is due at `now` (a retry, an expiry). */
  due(now: number): boolean {
    const at = this.nextAt();
    return at !== null && at <= now;
  }

  /** Starts each sink's loop that has something due (`force`: look even if nothing was queued). */
  kick(force = false): void {
    if (!force && !this.dirty) return;
    this.dirty = false;
    const now = this.host.now();
    const sinks = this.host.sql
      .exec(
        "SELECT sink, next_at FROM outbox WHERE id IN (SELECT MIN(id) FROM outbox GROUP BY sink) AND next_at <= ?",
        now,
      )
      .toArray();
    for (const r of sinks) this.kickSink(String(r.sink));
  }

  /** Resolves when every sink's loop has finished (tests). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running.values()]);
  }

  // -------------------------------------------------------------------------------------------

  private withPaging(change: (paging: PagingState) => PageIntent[]): PageIntent[] {
    const sql = this.host.sql;
    const open = new Map<string, OpenPage>();
    for (const r of sql.exec("SELECT key, kind, opened_at, expires_at FROM paging_open").toArray()) {
      open.set(String(r.key), {
        key: String(r.key),
        kind: String(r.kind) as OpenPage["kind"],
        openedAt: Number(r.opened_at),
        expiresAt: r.expires_at === null ? null : Number(r.expires_at),
      });
    }
    const incidentRow = sql.exec("SELECT value FROM meta WHERE key = 'paging_incident'").toArray()[0];
    const paging: PagingState = { incident: incidentRow ? Number(incidentRow.value) : null, open };
    const before = new Set(open.keys());
    const before_incident = paging.incident;
    const pages = change(paging);
    for (const key of before) if (!paging.open.has(key)) sql.exec("DELETE FROM paging_open WHERE key = ?", key);
    for (const page of paging.open.values()) {
      if (before.has(page.key)) continue;
      sql.exec(
        "INSERT INTO paging_open (key, kind, opened_at, expires_at) VALUES (?, ?, ?, ?)",
        page.key,
        page.kind,
        page.openedAt,
        page.expiresAt,
      );
    }
    if (paging.incident !== before_incident) {
      if (paging.incident === null) sql.exec("DELETE FROM meta WHERE key = 'paging_incident'");
      else {
        sql.exec(
          "INSERT INTO meta (key, value) VALUES ('paging_incident', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
          String(paging.incident),
        );
      }
    }
    if (pages.length > 0 || before.size !== paging.open.size) this.next = undefined;
    return pages;
  }

  private queuePage(target: string, sinks: Notify, statusUrl: string | undefined, page: PageIntent, now: number): void {
    if (sinks.pagerduty) {
      const event = pagerDutyEvent(page, sinks.pagerduty, target, statusUrl);
      this.insert("pagerduty", page.action, page.key, { sink: "pagerduty", event }, now);
    }
    if (sinks.opsgenie) {
      const severity = sinks.pagerduty ? severityOf(sinks.pagerduty, page.kind) : DEFAULT_SEVERITY[page.kind];
      const request = opsgenieRequest(page, severity, target, statusUrl);
      this.insert("opsgenie", page.action, page.key, { sink: "opsgenie", request }, now);
    }
  }

  private insert(sink: string, kind: string, key: string, request: QueuedRequest, now: number): void {
    const sql = this.host.sql;
    if (kind === "resolve") {
      const trigger = sql
        .exec("SELECT id FROM outbox WHERE key = ? AND sink = ? AND kind = 'trigger'", key, sink)
        .toArray()[0];
      if (trigger && this.sending.get(sink) !== Number(trigger.id)) {
        // Over before anyone was paged: the trigger goes, and its resolve with it.
        sql.exec("DELETE FROM outbox WHERE id = ?", Number(trigger.id));
        this.next = undefined;
        return;
      }
    }
    sql.exec(
      "INSERT INTO outbox (sink, kind, key, body, created_at, next_at, attempts) VALUES (?, ?, ?, ?, ?, ?, 0)",
      sink,
      kind,
      key,
      JSON.stringify(request),
      now,
      now,
    );
    this.next = this.next === undefined || this.next === null ? undefined : Math.min(this.next, now);
    this.dirty = true;
  }

  private kickSink(sink: string): void {
    if (this.running.has(sink)) {
      this.again.add(sink);
      return;
    }
    const loop = (async () => {
      do {
        this.again.delete(sink);
        await this.drain(sink);
      } while (this.again.has(sink));
    })()
      .catch((err: unknown) => {
        console.error(JSON.stringify({ level: "error", msg: "outbox loop failed", sink, error: String(err) }));
      })
      .finally(() => {
        this.running.delete(sink);
        const at = this.nextAt();
        if (at !== null) this.host.arm(at);
      });
    this.running.set(sink, loop);
    this.host.waitUntil(loop);
  }

  /** Sends the sink's due rows in order until it is empty, or its head fails. */
  private async drain(sink: string): Promise<void> {
    const sql = this.host.sql;
    for (;;) {
      const now = this.host.now();
      const r = sql.exec("SELECT * FROM outbox WHERE sink = ? ORDER BY id LIMIT 1", sink).toArray()[0];
      if (!r) return;
      const row: Row = {
        id: Number(r.id),
        sink: String(r.sink),
        kind: String(r.kind),
        key: String(r.key),
        body: String(r.body),
        createdAt: Number(r.created_at),
        nextAt: Number(r.next_at),
        attempts: Number(r.attempts),
      };
      if (row.nextAt > now) return;
      const target = this.targetOf(row);
      this.sending.set(sink, row.id);
      let outcome: Outcome;
      try {
        outcome = await this.send(target, row, now);
      } finally {
        this.sending.delete(sink);
      }
      const after = this.host.now();
      this.next = undefined;
      if (outcome.ok) {
        sql.exec("DELETE FROM outbox WHERE id = ?", row.id);
        continue;
      }
      const attempts = row.attempts + 1;
      const what = { sink, key: row.key, kind: row.kind, attempts, error: outcome.error };
      if (!outcome.retry || after - row.createdAt >= DROP_AFTER_MS) {
        sql.exec("DELETE FROM outbox WHERE id = ?", row.id);
        const why = outcome.retry ? "failing for an hour" : "refused";
        this.host.audit(target, "notify.dropped", { ...what, why });
        this.host.slack(
          target,
          `${target}: gave up sending ${row.kind} ${row.key} to ${sink} (${why}): ${outcome.error}. Check the sink and its secret; the audit log has the event.`,
        );
        continue;
      }
      const nextAt = after + backoffMs(attempts);
      sql.exec("UPDATE outbox SET attempts = ?, next_at = ? WHERE id = ?", attempts, nextAt, row.id);
      this.host.audit(target, "notify.failed", { ...what, retryAt: new Date(nextAt).toISOString() });
      return;
    }
  }

  /** The target a row belongs to: every row is this object's target's (the object's name). */
  private targetOf(row: Row): string {
    // Keys are `turnout/<target>/…` and webhook ids `<target>:<seq>`; agent pages name the target in `body`.
    if (row.key.startsWith("turnout/agent/")) {
      const q = JSON.parse(row.body) as QueuedRequest;
      if (q.sink === "pagerduty" && q.event.payload) return q.event.payload.component;
    }
    const m = /^turnout\/([^/]+)\//.exec(row.key) ?? /^([^:]+):\d+$/.exec(row.key);
    return m?.[1] ?? row.key;
  }

  private async send(target: string, row: Row, now: number): Promise<Outcome> {
    const cfg = this.host.config(target);
    const sinks = notifyFor(cfg.global, cfg.target);
    const queued = JSON.parse(row.body) as QueuedRequest;
    const hook = row.sink.startsWith("webhook:")
      ? (sinks.webhooks ?? []).find((h) => `webhook:${h.url}` === row.sink)
      : undefined;
    const secrets: string[] = [];
    const secret = (name: string) => {
      const value = this.host.secret(name);
      if (value) secrets.push(value);
      return value;
    };
    // An error text must never carry a secret into the audit log or Slack, even one echoed back.
    const clean = (text: string) => secrets.reduce((t, s) => t.split(s).join("[secret]"), text).slice(0, 300);
    let req: { url: string; init: RequestInit };
    try {
      req = httpRequest(
        queued,
        {
          ...(sinks.pagerduty ? { pagerduty: sinks.pagerduty } : {}),
          ...(sinks.opsgenie ? { opsgenie: sinks.opsgenie } : {}),
          ...(hook ? { url: hook.url, webhookSecretEnv: hook.secretEnv } : {}),
        },
        secret,
        now,
      );
    } catch (err) {
      // A sink removed from the config will not come back for these rows; a missing secret may be set.
      return { ok: false, retry: !(err instanceof SinkGoneError), error: clean((err as Error).message) };
    }
    try {
      const res = await fetchWithin(outboxTesting.budgetMs ?? DELIVERY_BUDGET_MS, row.sink, req.url, req.init);
      if (res.ok) {
        await res.body?.cancel();
        return { ok: true };
      }
      const text = await res.text().catch(() => "");
      const retry = row.sink.startsWith("webhook:") || res.status >= 500 || res.status === 408 || res.status === 429;
      return { ok: false, retry, error: clean(`HTTP ${res.status}${text ? `: ${text}` : ""}`) };
    } catch (err) {
      return { ok: false, retry: true, error: clean(String(err instanceof Error ? err.message : err)) };
    }
  }
}
