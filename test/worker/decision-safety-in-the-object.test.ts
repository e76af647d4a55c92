/**
 * The decision-safety sequences inside the real Durable Object, in workerd: a drill that yields,
 * configuration edits and removal across an object restart, a dispatch lost to an eviction between
 * commit and delivery, a late authentic report, and bounded reads with a long history (design §4,
 * §5 rules 11, 13, 15, 16).
 */
import { abortAllDurableObjects, evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { type WorkerConfig, WorkerConfigSchema } from "../../shared/config.ts";
import type { DispatchAttempt } from "../../worker/agents/dispatcher.ts";
import { TargetObject, type TargetView } from "../../worker/target/target-object.ts";
import testConfig from "../fixtures/worker-test-config.json" with { type: "json" };
import { postAlert } from "./support/post-alert.ts";
import { useRecordingObject } from "./support/recording-object.ts";

const T0 = Date.parse("2026-11-22T10:00:00Z");
const rec = useRecordingObject({ start: T0 });
const auth = { authorization: "Bearer test-operator-token" };

async function alert(target: string, side: "primary" | "secondary", status: "firing" | "resolved" = "firing") {
  const res = await postAlert({
    status,
    labels: { alertname: "Safety", target, side },
    startsAt: T0 - 1000,
    endsAt: rec.clock,
    fingerprint: `${target}-${side}`.padEnd(16, "0").slice(0, 16),
  });
  expect(res.status).toBe(200);
}

async function view(target: string): Promise<TargetView> {
  return (await (await exports.default.fetch(`http://w/v1/targets/${target}`, { headers: auth })).json()) as TargetView;
}

const command = (target: string, body: Record<string, unknown>) =>
  exports.default.fetch(`http://w/v1/targets/${target}/commands`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify(body),
  });

async function types(target: string): Promise<string[]> {
  return (await env.TARGETS.getByName(target).events(0, 1000)).events.map((e) => e.type);
}

/** The test config with edits, as the object will read it. */
function configWith(edit: (c: WorkerConfig) => void): WorkerConfig {
  const c = WorkerConfigSchema.parse(structuredClone(testConfig));
  edit(c);
  return c;
}

describe("decision safety inside the TargetObject", () => {
  it("rule 11: a real outage during a dry-run drill the agent never reports on fails over after the hold", async () => {
    expect((await command("bg-a", { command: "drill" })).status).toBe(200);
    expect(rec.dispatched).toMatchObject([{ kind: "drill", dryRun: true }]);
    await alert("bg-a", "primary");
    const v = await view("bg-a");
    expect(v.phase).toBe("pending");
    expect(v.lastDrill).toMatchObject({ outcome: "aborted" });
    await rec.fireAlarm("bg-a", T0 + 30_000);
    expect(rec.dispatched.at(-1)).toMatchObject({ id: "bg-a:2", kind: "failover", dryRun: false });
    expect(await types("bg-a")).toContain("drill.aborted");
    expect(rec.notes.some((n) => /drill aborted/.test(n.text))).toBe(true);
  });

  it("rule 15: editing initialActiveSide across a restart never switches; removal makes the alarm only audit, once", async () => {
    const stub = env.TARGETS.getByName("bg-b");
    await alert("bg-b", "primary");
    expect((await view("bg-b")).phase).toBe("pending");
    // The person edits the config to stop the target, and the object restarts.
    TargetObject.testing = { ...TargetObject.testing, config: () => configWith((c) => delete c.targets["bg-b"]) };
    await evictDurableObject(stub);
    rec.clock = T0 + 30_000;
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    await stub.settle();
    expect(rec.dispatched).toHaveLength(0);
    expect((await types("bg-b")).filter((t) => t === "target.unconfigured")).toHaveLength(1);
    rec.clock = T0 + 3600_000;
    await runDurableObjectAlarm(stub);
    expect((await types("bg-b")).filter((t) => t === "target.unconfigured")).toHaveLength(1);
    expect(rec.notes.some((n) => /no longer in the configuration/.test(n.text))).toBe(true);
    // Back, with initialActiveSide edited and auto failback: a fresh hold, never a switch to "home".
    TargetObject.testing = {
      ...TargetObject.testing,
      config: () =>
        configWith((c) => {
          const t = c.targets["bg-b"];
          if (t) Object.assign(t, { initialActiveSide: "secondary", policy: { ...t.policy, failback: "auto" } });
        }),
    };
    await evictDurableObject(stub);
    await alert("bg-b", "primary", "resolved");
    rec.clock = T0 + 7200_000;
    await runDurableObjectAlarm(stub);
    await stub.settle();
    expect(rec.dispatched).toHaveLength(0);
    expect((await view("bg-b")).activeSide).toBe("primary");
  });

  it("rule 16: a dispatch lost to an eviction between commit and delivery is re-sent 15 s later", async () => {
    const stub = env.TARGETS.getByName("bg-c");
    const sent: string[] = [];
    const recording = TargetObject.testing?.dispatcher;
    // The first delivery never completes (the object is evicted mid-fetch).
    TargetObject.testing = {
      ...TargetObject.testing,
      dispatcher: {
        dispatch: (req): Promise<DispatchAttempt> => {
          sent.push(req.id);
          if (sent.length === 1) return new Promise<DispatchAttempt>(() => {});
          return recording ? recording.dispatch(req) : Promise.resolve({ ok: true, detail: "recorded" });
        },
      },
    };
    // A manual failover commits the action and starts its delivery (the alarm would wait for it).
    expect((await command("bg-c", { command: "failover" })).status).toBe(200);
    expect(sent).toEqual(["bg-c:1"]);
    // The object dies mid-fetch (eviction or redeploy): its delivery result is never recorded.
    await abortAllDurableObjects();
    rec.clock = T0 + 14_000;
    await runDurableObjectAlarm(stub);
    expect(sent).toEqual(["bg-c:1"]);
    rec.clock = T0 + 15_000;
    await runDurableObjectAlarm(stub);
    await stub.settle();
    expect(sent).toEqual(["bg-c:1", "bg-c:1"]);
    expect(await types("bg-c")).toContain("action.redelivered");
  });

  it("rule 13: a late succeeded report after timeout and cancel sets the active side, audited and notified", async () => {
    const stub = env.TARGETS.getByName("decide-auto");
    await postAlert({
      status: "firing",
      labels: { alertname: "Decide", target: "decide-auto", side: "primary" },
      startsAt: T0 - 1000,
      endsAt: T0,
      fingerprint: "late000000000001",
    });
    await rec.fireAlarm("decide-auto", T0 + 30_000);
    // actionTimeoutSeconds 60, dispatchRetries 2: failed after three minutes without a report.
    for (const t of [90, 150, 210]) await rec.fireAlarm("decide-auto", T0 + t * 1000);
    expect((await view("decide-auto")).phase).toBe("failed");
    expect((await command("decide-auto", { command: "cancel" })).status).toBe(200);
    const r = await stub.report("decide-auto", {
      actionId: "decide-auto:1",
      target: "decide-auto",
      status: "succeeded",
      activeSide: "secondary",
      dryRun: false,
      steps: [],
      at: new Date(rec.clock).toISOString(),
    });
    expect(r).toEqual({ accepted: true });
    expect((await view("decide-auto")).activeSide).toBe("secondary");
    expect(await types("decide-auto")).toContain("action.reconciled");
  });

  it("§4: with 10,000 resolved signals and 20,000 events stored, a view and an ingest read a bounded number of rows", async () => {
    const stub = env.TARGETS.getByName("safety-rows");
    await alert("safety-rows", "primary", "resolved");
    await runInDurableObject(stub, (_instance, state) => {
      const sql = state.storage.sql;
      for (let i = 0; i < 10_000; i++) {
        sql.exec(
          `INSERT INTO signals (key, source, side, status, soft, at, incident, labels, annotations, notices,
             received_at, first_seen, last_seen, stale_since)
           VALUES (?, 'alertmanager', 'secondary', 'resolved', 0, ?, ?, '{}', '{}', '{}', ?, ?, ?, NULL)`,
          `am:old-${i}`,
          T0,
          `am:old-${i}#x`,
          T0,
          T0,
          T0,
        );
      }
      for (let i = 0; i < 20_000; i++) {
        sql.exec(
          "INSERT INTO events (seq, at, type, detail, cause) VALUES (?, ?, 'test.filler', '{}', NULL)",
          100_000 + i,
          T0,
        );
      }
    });
    // Restarted, so the ingest below also loads what the object keeps in memory (its firing signals).
    await evictDurableObject(stub);
    const rowsRead = () => runInDurableObject(stub, (instance: TargetObject) => instance.rowsRead);
    await view("safety-rows");
    const viewRows = await rowsRead();
    await alert("safety-rows", "primary");
    const ingestRows = await rowsRead();
    // A handful of index and state rows, nothing near the 30,000 stored.
    expect(viewRows).toBeLessThan(100);
    expect(ingestRows).toBeLessThan(100);
  });

  it("§4 retention: the alarm prunes resolved signals older than 7 days and events beyond 10,000, in bounded batches", async () => {
    const stub = env.TARGETS.getByName("safety-rows");
    await alert("safety-rows", "primary");
    const DAY = 86_400_000;
    await runInDurableObject(stub, (_instance, state) => {
      const sql = state.storage.sql;
      for (let i = 0; i < 3000; i++) {
        // Half of them resolved 8 days ago, half a day ago.
        const seen = i % 2 === 0 ? T0 - 8 * DAY : T0 - DAY;
        sql.exec(
          `INSERT INTO signals (key, source, side, status, soft, at, incident, labels, annotations, notices,
             received_at, first_seen, last_seen, stale_since)
           VALUES (?, 'alertmanager', 'secondary', 'resolved', 0, ?, ?, '{}', '{}', '{}', ?, ?, ?, NULL)`,
          `am:old-${i}`,
          seen,
          `am:old-${i}#x`,
          seen,
          seen,
          seen,
        );
      }
    });
    // 10,050 more events through the object's own counter (so seqs stay contiguous).
    const more = await runInDurableObject(stub, (_instance, state) => {
      const sql = state.storage.sql;
      const row = sql.exec("SELECT json FROM state WHERE id = 1").one();
      const saved = JSON.parse(String(row.json));
      for (let i = 0; i < 10_050; i++) {
        saved.machine.seq += 1;
        sql.exec(
          "INSERT INTO events (seq, at, type, detail, cause) VALUES (?, ?, 'test.filler', '{}', NULL)",
          saved.machine.seq,
          T0,
        );
      }
      saved.lastPrunedAt = 0;
      sql.exec("UPDATE state SET json = ? WHERE id = 1", JSON.stringify(saved));
      return Number(saved.machine.seq);
    });
    // Rows written behind the object's back: it is their only writer and answers from memory what
    // it wrote, so restart it (as a deploy would) to read these.
    await evictDurableObject(stub);
    const count = (q: string) => runInDurableObject(stub, (_i, state) => Number(state.storage.sql.exec(q).one().n));
    await rec.fireAlarm("safety-rows", T0 + 60_000);
    expect(await count("SELECT COUNT(*) AS n FROM events")).toBeLessThanOrEqual(10_000 + 5);
    expect(await count("SELECT MIN(seq) AS n FROM events")).toBeGreaterThan(more - 10_000 - 5);
    // At most 2,000 old resolved signals per pass; the day-old ones and the firing one stay.
    expect(await count(`SELECT COUNT(*) AS n FROM signals WHERE last_seen < ${T0 - 7 * DAY}`)).toBe(0);
    expect(await count("SELECT COUNT(*) AS n FROM signals WHERE status = 'resolved'")).toBe(1500);
    expect(await count("SELECT COUNT(*) AS n FROM signals WHERE status = 'firing'")).toBe(1);
  });

  it("§10: a record: true target keeps the verified bodies and exports them as --webhooks NDJSON", async () => {
    await alert("safety-record", "primary");
    await alert("bg-a", "primary");
    const res = await exports.default.fetch("http://w/v1/targets/safety-record/recording", { headers: auth });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("application/x-ndjson");
    const lines = (await res.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ source: "alertmanager", body: { version: "4" } });
    expect(Date.parse(lines[0].at)).toBeGreaterThan(0);
    const none = await exports.default.fetch("http://w/v1/targets/bg-a/recording", { headers: auth });
    expect(await none.text()).toBe("");
  });
});
