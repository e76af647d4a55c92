/**
 * End to end on one machine (issue 9): the real worker in workerd (`wrangler dev`), the agent as
 * a separate process in sandbox mode (fake Kubernetes API, simulated static-route operator, a real
 * `etcdctl make-mirror` as the synchronizer), a real BIND and a real etcd pair, talking over real
 * HTTP with real Turnout-Signatures. Policy times are short
 * (holdSeconds 2) because a separate workerd process has no injectable clock; the waits below
 * poll the worker's API for the event they expect, and only the "nothing happens" checks wait
 * out a hold.
 */
import { createServer, type Server } from "node:http";
import { Etcd3 } from "etcd3";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { queryRecord } from "../../agent/dns/rfc2136.ts";
import { sign } from "../../shared/signature.ts";
import type { AuditEvent, TargetView } from "../../worker/target/target-view.ts";
import { eventually } from "../support/etcd.ts";
import { readText } from "../support/request-text.ts";
import { DNS, HEARTBEAT_KEY, type Stack, startStack, TOKENS, waitFor } from "./stack.ts";

const HOLD_SECONDS = 2;

let stack: Stack;
/** What the worker posted to its Slack incoming webhook (a receiver on 127.0.0.1). */
const slackTexts: string[] = [];
let slack: Server | undefined;

beforeAll(async () => {
  slack = createServer((req, res) => {
    void readText(req).then((body) => {
      slackTexts.push(body);
      res.end("ok");
    });
  });
  await new Promise<void>((resolve) => slack?.listen(0, "127.0.0.1", resolve));
  const address = slack.address();
  const slackUrl = typeof address === "object" && address ? `http://127.0.0.1:${address.port}/hook` : "";
  stack = await startStack({
    workerVars: { SLACK_WEBHOOK_URL: slackUrl },
    targets: {
      "late-gw": { kind: "route-swap", holdSeconds: HOLD_SECONDS },
      "egress-gw": { kind: "route-swap", holdSeconds: HOLD_SECONDS },
      "bootstrap-dns": { kind: "dns-flip", holdSeconds: HOLD_SECONDS },
      "dup-gw": { kind: "route-swap", holdSeconds: HOLD_SECONDS },
      "quiet-gw": { kind: "route-swap", holdSeconds: HOLD_SECONDS },
      "reorder-gw": { kind: "route-swap", holdSeconds: HOLD_SECONDS },
      "quorum-gw": { kind: "route-swap", holdSeconds: HOLD_SECONDS, policy: { quorum: 2 } },
      "approve-gw": { kind: "route-swap", holdSeconds: HOLD_SECONDS, policy: { approval: "required" } },
      "drill-gw": { kind: "route-swap", holdSeconds: HOLD_SECONDS },
      "yield-gw": { kind: "route-swap", holdSeconds: HOLD_SECONDS },
      "resume-gw": { kind: "route-swap", holdSeconds: HOLD_SECONDS },
      "failed-gw": { kind: "route-swap", holdSeconds: HOLD_SECONDS, agentless: true },
      "both-gw": { kind: "route-swap", holdSeconds: HOLD_SECONDS },
      "platform-dns": { kind: "dns-flip", holdSeconds: HOLD_SECONDS },
      "global-dr": { kind: "etcd-sync-teardown", holdSeconds: HOLD_SECONDS, dns: "platform-dns" },
    },
    // The first scenario needs the agent down when the hold expires; it starts it itself.
    agent: false,
  });
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  await new Promise((resolve) => slack?.close(resolve));
}, 30_000);

// A failing scenario says what the two processes logged, not only which wait timed out.
beforeEach(({ onTestFailed }) => {
  onTestFailed(() => {
    console.error(
      `agent output (tail):\n${stack?.agentOutput().slice(-4000)}\n\nworker output (tail):\n${stack?.worker.output().slice(-4000)}`,
    );
  });
});

const ofType = (events: AuditEvent[], type: string) => events.filter((e) => e.type === type);

/** Waits until the target is steady on `side` with its last action finished. */
function settledOn(target: string, side: "primary" | "secondary", timeoutMs = 20_000): Promise<TargetView> {
  return waitFor(
    `${target} steady on ${side}`,
    async () => {
      const v = await stack.view(target);
      return v.activeSide === side && v.phase === "steady" && v.action?.status === "succeeded" ? v : undefined;
    },
    timeoutMs,
  );
}

/** Follows `cause` links from `from` back to the event that started the chain. */
function chainOf(events: AuditEvent[], from: AuditEvent): AuditEvent[] {
  const bySeq = new Map(events.map((e) => [e.seq, e]));
  const chain = [from];
  let at: AuditEvent | undefined = from;
  while (at?.cause !== null && at?.cause !== undefined) {
    at = bySeq.get(at.cause);
    if (at) chain.unshift(at);
  }
  return chain;
}

describe("failover end to end: workerd worker, agent process, BIND, etcd", () => {
  it("an agent that is down when the hold expires gets the action on a later delivery and runs it once", async () => {
    const t0 = Date.now();
    const answer = await stack.alert([{ target: "late-gw", side: "primary", status: "firing", at: t0 }]);
    expect(answer).toMatchObject({ status: 200, body: { accepted: 1, targets: ["late-gw"] } });

    // The object dispatches at hold expiry, finds nobody listening and schedules a retry (5 s backoff).
    const failed = await waitFor("the first delivery to fail", async () => {
      return ofType(await stack.events("late-gw"), "action.delivery-failed")[0];
    });
    expect(JSON.stringify(failed.detail)).toMatch(/late-gw:1/);
    expect((await stack.view("late-gw")).phase).toBe("executing");
    await stack.startAgent();

    const view = await settledOn("late-gw", "secondary");
    expect(view.action).toMatchObject({ id: "late-gw:1", kind: "failover", status: "succeeded" });
    const events = await stack.events("late-gw");
    expect(ofType(events, "action.dispatched")).toHaveLength(1);
    expect(ofType(events, "action.succeeded")).toHaveLength(1);
    expect(ofType(events, "action.delivery-failed").length).toBeGreaterThanOrEqual(1);
    // The agent knows exactly one action for this target, each step run once.
    const report = await stack.agentReport("late-gw:1");
    expect(report?.status).toBe("succeeded");
    expect(report?.steps.map((s) => s.name)).toEqual([
      "preflight",
      "record-outgoing",
      "delete-outgoing",
      "create-incoming",
      "egress-check",
    ]);
    expect(await stack.agentReport("late-gw:2")).toBeUndefined();
    // The redelivery waited out the backoff instead of hammering the closed port.
    const dispatched = ofType(events, "action.dispatched")[0];
    const succeeded = ofType(events, "action.succeeded")[0];
    expect(dispatched && succeeded && Date.parse(succeeded.at) - Date.parse(dispatched.at)).toBeGreaterThanOrEqual(
      4_000,
    );
  }, 40_000);

  it("an Alertmanager alert for the primary gateway swaps the route once after the hold and reads as one causal chain", async () => {
    const t0 = Date.now();
    const answer = await stack.alert([{ target: "egress-gw", side: "primary", status: "firing", at: t0 }]);
    expect(answer).toMatchObject({ status: 200, body: { accepted: 1, duplicates: 0, targets: ["egress-gw"] } });
    const pending = await stack.view("egress-gw");
    expect(pending).toMatchObject({ activeSide: "primary", phase: "pending" });
    expect(pending.sides.primary.health).toBe("down");

    const view = await settledOn("egress-gw", "secondary");
    expect(view).toMatchObject({
      name: "egress-gw",
      activeSide: "secondary",
      phase: "steady",
      action: { id: "egress-gw:1", kind: "failover", from: "primary", to: "secondary", status: "succeeded" },
    });

    // The agent's own record of the action: the route really was swapped, step by step.
    const report = await stack.agentReport("egress-gw:1");
    expect(report).toMatchObject({ actionId: "egress-gw:1", status: "succeeded", activeSide: "secondary" });
    const steps = Object.fromEntries((report?.steps ?? []).map((s) => [s.name, s]));
    expect(steps["delete-outgoing"]).toMatchObject({ status: "succeeded" });
    expect(steps["delete-outgoing"]?.detail).toMatch(/route-1-primary deleted/);
    expect(steps["create-incoming"]).toMatchObject({ status: "succeeded" });
    expect(steps["create-incoming"]?.detail).toMatch(/route-1-secondary .*via 10\.116\.1\.12.* Ready on 3\/3 nodes/);
    // The worker holds the same steps (the reports were received).
    expect(view.action?.steps.map((s) => `${s.name}:${s.status}`)).toEqual(
      report?.steps.map((s) => `${s.name}:${s.status}`),
    );

    const events = await stack.events("egress-gw");
    const dispatched = ofType(events, "action.dispatched");
    expect(dispatched).toHaveLength(1);
    const signal = ofType(events, "signal.firing")[0];
    const first = dispatched[0];
    if (!signal || !first) throw new Error("missing signal or dispatch event");
    // Exactly after the hold, not before (and not long after: the alarm drives it).
    const held = Date.parse(first.at) - Date.parse(signal.at);
    expect(held).toBeGreaterThanOrEqual(HOLD_SECONDS * 1000);
    expect(held).toBeLessThan(HOLD_SECONDS * 1000 + 2500);
    expect(ofType(events, "action.progress").every((e) => e.cause === first.seq)).toBe(true);
    expect(ofType(events, "action.progress").length).toBeGreaterThan(0);

    // The audit chain from the final phase change back to the alert, through `cause` links.
    const steady = events.filter((e) => e.type === "phase.changed").at(-1);
    if (!steady) throw new Error("no phase change");
    expect(steady.detail).toMatchObject({ from: "executing", to: "steady" });
    expect(chainOf(events, steady).map((e) => e.type)).toEqual([
      "signal.firing",
      "side.health-changed",
      "phase.changed",
      "phase.changed",
      "action.dispatched",
      "action.succeeded",
      "phase.changed",
    ]);
  }, 30_000);

  it("an alert for the primary bootstrap node flips the record in BIND to the secondary", async () => {
    const bind = stack.bind;
    if (!bind) throw new Error("the stack started no BIND");
    expect(await queryRecord(bind.server, DNS.record, "A")).toEqual([DNS.primary]);

    const answer = await stack.alert([{ target: "bootstrap-dns", side: "primary", status: "firing", at: Date.now() }]);
    expect(answer.body.targets).toEqual(["bootstrap-dns"]);
    const view = await settledOn("bootstrap-dns", "secondary");
    expect(view.action).toMatchObject({ id: "bootstrap-dns:1", status: "succeeded" });

    expect(await queryRecord(bind.server, DNS.record, "A")).toEqual([DNS.secondary]);
    const report = await stack.agentReport("bootstrap-dns:1");
    expect(report?.steps.map((s) => `${s.name}:${s.status}`)).toEqual([
      "preflight:succeeded",
      "update:succeeded",
      "verify:succeeded",
    ]);
    expect(report?.steps.find((s) => s.name === "verify")?.detail).toContain(DNS.secondary);
    expect(ofType(await stack.events("bootstrap-dns"), "action.dispatched")).toHaveLength(1);
  }, 30_000);

  it("duplicate and out-of-order deliveries of the same alert cause no second action", async () => {
    const t0 = Date.now();
    const firing = { target: "dup-gw", side: "primary", status: "firing", at: t0 } as const;
    // Alertmanager HA peers deliver the same notification at once.
    const answers = await Promise.all([stack.alert([firing]), stack.alert([firing]), stack.alert([firing])]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(answers.reduce((n, a) => n + a.body.accepted, 0)).toBe(1);
    expect(answers.reduce((n, a) => n + a.body.duplicates, 0)).toBe(2);

    await settledOn("dup-gw", "secondary");
    // A repeat after the action, the resolve, then a peer's late copy of the old firing.
    expect((await stack.alert([firing])).body).toMatchObject({ accepted: 0, duplicates: 1 });
    expect((await stack.alert([{ ...firing, status: "resolved", at: Date.now(), startsAt: t0 }])).body).toMatchObject({
      accepted: 1,
    });
    expect((await stack.alert([firing])).body).toMatchObject({ accepted: 0, ignored: 1 });

    const view = await stack.view("dup-gw");
    expect(view).toMatchObject({ activeSide: "secondary", phase: "steady", action: { id: "dup-gw:1" } });
    expect(view.sides.primary.health).toBe("up");
    expect(ofType(await stack.events("dup-gw"), "action.dispatched")).toHaveLength(1);
    expect(await stack.agentReport("dup-gw:2")).toBeUndefined();
  }, 30_000);

  it("a resolve during the hold, or a resolve delivered before its firing, causes no action", async () => {
    const t0 = Date.now();
    // quiet-gw: down, then back up 500 ms later, inside the 2 s hold.
    await stack.alert([{ target: "quiet-gw", side: "primary", status: "firing", at: t0 }]);
    expect((await stack.view("quiet-gw")).phase).toBe("pending");
    // reorder-gw: the resolve overtakes its firing; the late firing is older, hence stale.
    const resolved = await stack.alert([
      { target: "reorder-gw", side: "primary", status: "resolved", at: t0 + 400, startsAt: t0 },
    ]);
    expect(resolved.body.accepted).toBe(1);
    expect(
      (await stack.alert([{ target: "reorder-gw", side: "primary", status: "firing", at: t0 }])).body,
    ).toMatchObject({
      accepted: 0,
      ignored: 1,
    });
    await new Promise((r) => setTimeout(r, Math.max(0, t0 + 500 - Date.now())));
    await stack.alert([{ target: "quiet-gw", side: "primary", status: "resolved", at: Date.now(), startsAt: t0 }]);
    expect((await stack.view("quiet-gw")).phase).toBe("steady");

    // Nothing to wait for but the hold running out: give it a second more than the hold.
    await new Promise((r) => setTimeout(r, HOLD_SECONDS * 1000 + 1000));
    for (const target of ["quiet-gw", "reorder-gw"]) {
      const view = await stack.view(target);
      expect(view).toMatchObject({ activeSide: "primary", phase: "steady", action: null });
      expect(view.sides.primary.health).toBe("up");
      expect(ofType(await stack.events(target), "action.dispatched")).toHaveLength(0);
      expect(await stack.agentReport(`${target}:1`)).toBeUndefined();
    }
    const quiet = await stack.events("quiet-gw");
    expect(quiet.filter((e) => e.type === "phase.changed").map((e) => e.detail)).toMatchObject([
      { from: "steady", to: "pending" },
      { from: "pending", to: "steady" },
    ]);
  }, 30_000);

  it("a failback command returns egress-gw to its primary route once the primary is up again", async () => {
    await settledOn("egress-gw", "secondary");
    // Rule 2: never switch to a side that is down.
    const refused = await stack.command("egress-gw", "failback", { reason: "primary still down" });
    expect(refused.status).toBe(409);
    expect(refused.headers.get("content-type")).toContain("application/problem+json");

    const answer = await stack.alert([
      { target: "egress-gw", side: "primary", status: "resolved", at: Date.now(), startsAt: Date.now() - 60_000 },
    ]);
    expect(answer.body.accepted).toBe(1);
    const res = await stack.command("egress-gw", "failback", { reason: "gateway repaired" });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ applied: true, target: { phase: "executing" } });

    const view = await settledOn("egress-gw", "primary");
    expect(view.action).toMatchObject({ id: "egress-gw:2", kind: "failback", from: "secondary", to: "primary" });
    const report = await stack.agentReport("egress-gw:2");
    expect(report).toMatchObject({ status: "succeeded", activeSide: "primary" });
    expect(report?.steps.find((s) => s.name === "create-incoming")?.detail).toMatch(/route-1-primary/);
    const events = await stack.events("egress-gw");
    const accepted = ofType(events, "command.accepted").at(-1);
    const dispatched = ofType(events, "action.dispatched").at(-1);
    expect(dispatched?.detail).toMatchObject({ id: "egress-gw:2", kind: "failback" });
    expect(accepted && dispatched && chainOf(events, dispatched).map((e) => e.seq)).toContain(accepted?.seq);
  }, 30_000);
  it("bootstrap-dns fails back by command and BIND answers the primary value again", async () => {
    const bind = stack.bind;
    if (!bind) throw new Error("the stack started no BIND");
    await settledOn("bootstrap-dns", "secondary");
    await stack.alert([
      { target: "bootstrap-dns", side: "primary", status: "resolved", at: Date.now(), startsAt: Date.now() - 60_000 },
    ]);
    expect((await stack.command("bootstrap-dns", "failback", { reason: "node repaired" })).status).toBe(200);
    const view = await settledOn("bootstrap-dns", "primary");
    expect(view.action).toMatchObject({ id: "bootstrap-dns:2", kind: "failback" });
    expect(await queryRecord(bind.server, DNS.record, "A")).toEqual([DNS.primary]);
  }, 30_000);

  it("with quorum 2 an Alertmanager alert alone holds nothing; the Nagios HARD problem for the same gateway completes the quorum", async () => {
    await stack.alert([{ target: "quorum-gw", side: "primary", status: "firing", at: Date.now() }]);
    const one = await stack.view("quorum-gw");
    expect(one).toMatchObject({ phase: "steady", activeSide: "primary" });
    expect(one.sides.primary.firing).toHaveLength(1);
    // Below quorum the side is not down (the engine calls it unknown, design §3).
    expect(one.sides.primary.health).not.toBe("down");

    const nagios = await stack.nagios("quorum-gw", "primary", "PROBLEM");
    expect(nagios).toMatchObject({ status: 200, body: { accepted: 1, targets: ["quorum-gw"] } });
    const two = await stack.view("quorum-gw");
    expect(two.phase).toBe("pending");
    expect(two.sides.primary.firing.map((f) => f.source).sort()).toEqual(["alertmanager", "nagios"]);

    await settledOn("quorum-gw", "secondary");
    const events = await stack.events("quorum-gw");
    expect(ofType(events, "action.dispatched")).toHaveLength(1);
    const health = ofType(events, "side.health-changed").find((e) => JSON.stringify(e.detail).includes('"down"'));
    if (!health) throw new Error("no side.health-changed event to down");
    expect(health.detail).toMatchObject({ side: "primary", health: "down" });
    // The side went down on the Nagios signal, the second source.
    expect(chainOf(events, health)[0]?.detail).toMatchObject({ source: "nagios" });
  }, 30_000);

  it("with approval required the failover waits for the approve command, then runs", async () => {
    await stack.alert([{ target: "approve-gw", side: "primary", status: "firing", at: Date.now() }]);
    const waiting = await waitFor("approve-gw awaiting approval", async () => {
      const v = await stack.view("approve-gw");
      return v.phase === "awaiting_approval" ? v : undefined;
    });
    expect(waiting.activeSide).toBe("primary");
    expect(ofType(await stack.events("approve-gw"), "action.dispatched")).toHaveLength(0);
    expect(await stack.agentReport("approve-gw:1")).toBeUndefined();

    const res = await stack.command("approve-gw", "approve", { reason: "checked the gateway" });
    expect(res.status).toBe(200);
    const view = await settledOn("approve-gw", "secondary");
    expect(view.action).toMatchObject({ id: "approve-gw:1", kind: "failover", status: "succeeded" });
    const events = await stack.events("approve-gw");
    expect(ofType(events, "approval.requested")).toHaveLength(1);
    expect(ofType(events, "action.dispatched")).toHaveLength(1);
  }, 30_000);

  it("a dry-run drill runs the steps without changing anything and leaves the active side alone", async () => {
    const res = await stack.command("drill-gw", "drill", { reason: "weekly drill" });
    expect(res.status).toBe(200);
    const done = await waitFor("drill completed", async () =>
      ofType(await stack.events("drill-gw"), "drill.completed").at(0),
    );
    expect(done.detail).toBeDefined();
    const view = await stack.view("drill-gw");
    expect(view).toMatchObject({ activeSide: "primary", phase: "steady" });
    const report = await stack.agentReport("drill-gw:1");
    expect(report).toMatchObject({ status: "succeeded", dryRun: true });
    // The real failover afterwards still finds the primary route in place (the drill deleted nothing).
    await stack.alert([{ target: "drill-gw", side: "primary", status: "firing", at: Date.now() }]);
    const after = await settledOn("drill-gw", "secondary");
    const live = await stack.agentReport(after.action?.id ?? "");
    expect(live?.steps.find((s) => s.name === "delete-outgoing")?.detail).toMatch(/route-\d+-primary deleted/);
  }, 30_000);

  it("rule 11: a real outage during a dry-run drill aborts the drill and fails over after the hold", async () => {
    expect((await stack.command("yield-gw", "drill")).status).toBe(200);
    const signalAt = Date.now();
    await stack.alert([{ target: "yield-gw", side: "primary", status: "firing", at: signalAt }]);
    const events = await waitFor("drill aborted", async () => {
      const all = await stack.events("yield-gw");
      return ofType(all, "drill.aborted").length > 0 ? all : undefined;
    });
    expect(ofType(events, "drill.aborted")[0]?.detail).toMatchObject({ outcome: "aborted" });
    const done = await settledOn("yield-gw", "secondary");
    expect(done.action).toMatchObject({ kind: "failover", dryRun: false, status: "succeeded" });
    const dispatched = ofType(await stack.events("yield-gw"), "action.dispatched").find(
      (e) => (e.detail as { dryRun?: boolean } | null)?.dryRun === false,
    );
    // The real action waited for its hold, not for the drill (an hour by default if the agent never reported).
    expect(Date.parse(dispatched?.at ?? "") - signalAt).toBeLessThan(HOLD_SECONDS * 1000 + 5_000);
  }, 30_000);

  it("rule 14: resume starts the hold anew instead of acting at once on a hold that ran out while paused", async () => {
    expect((await stack.command("resume-gw", "pause")).status).toBe(200);
    await stack.alert([{ target: "resume-gw", side: "primary", status: "firing", at: Date.now() }]);
    // The hold runs out while paused (the one wait here that must pass real time).
    await new Promise((r) => setTimeout(r, (HOLD_SECONDS + 1) * 1000));
    expect((await stack.view("resume-gw")).phase).toBe("pending");
    const resumedAt = Date.now();
    expect((await stack.command("resume-gw", "resume")).status).toBe(200);
    expect((await stack.view("resume-gw")).action).toBeNull();
    await settledOn("resume-gw", "secondary");
    const events = await stack.events("resume-gw");
    expect(ofType(events, "hold.restarted")).toHaveLength(1);
    const dispatched = ofType(events, "action.dispatched")[0];
    expect(Date.parse(dispatched?.at ?? "")).toBeGreaterThanOrEqual(resumedAt + HOLD_SECONDS * 1000 - 50);
  }, 30_000);

  it("rule 12: a failed target keeps watching: the active side going down again is audited and notified, nothing dispatched", async () => {
    await stack.alert([{ target: "failed-gw", side: "primary", status: "firing", at: Date.now() }]);
    // The agent does not know failed-gw: its 404 fails the action at once.
    await waitFor("failed-gw failed", async () =>
      (await stack.view("failed-gw")).phase === "failed" ? true : undefined,
    );
    await stack.alert([
      { target: "failed-gw", side: "primary", status: "resolved", at: Date.now() + 1000, startsAt: Date.now() - 5000 },
    ]);
    await waitFor("primary up", async () =>
      (await stack.view("failed-gw")).sides.primary.health === "up" ? true : undefined,
    );
    await stack.alert([{ target: "failed-gw", side: "primary", status: "firing", at: Date.now() + 2000 }]);
    const notified = await waitFor("the notification", async () =>
      slackTexts.find((t) => t.includes("failed-gw") && t.includes("(active) is DOWN while the target is failed")),
    );
    expect(notified).toMatch(/automatic action is off until retry, revert or cancel/);
    const view = await stack.view("failed-gw");
    expect(view).toMatchObject({ phase: "failed", activeSide: "primary" });
    expect(ofType(await stack.events("failed-gw"), "action.dispatched")).toHaveLength(1);
  }, 30_000);

  it("both sides down: no switch to a down side, the block is audited", async () => {
    const now = Date.now();
    await stack.alert([
      { target: "both-gw", side: "secondary", status: "firing", at: now },
      { target: "both-gw", side: "primary", status: "firing", at: now },
    ]);
    const blocked = await waitFor("both-sides-down", async () =>
      ofType(await stack.events("both-gw"), "both-sides-down").at(0),
    );
    expect(blocked.detail).toMatchObject({ active: "primary", other: "secondary" });
    const view = await stack.view("both-gw");
    expect(view.activeSide).toBe("primary");
    expect(ofType(await stack.events("both-gw"), "action.dispatched")).toHaveLength(0);
  }, 30_000);

  it("a report with a wrong signature is refused with 401 and changes nothing", async () => {
    const before = await stack.view("egress-gw");
    const report = JSON.stringify({
      actionId: "egress-gw:9",
      target: "egress-gw",
      status: "succeeded",
      activeSide: "secondary",
      steps: [],
      at: new Date().toISOString(),
    });
    const forged = await sign("not-the-agent-secret", report, Math.floor(Date.now() / 1000));
    const res = await fetch(`${stack.worker.url}/v1/agent/reports`, {
      method: "POST",
      headers: { "content-type": "application/json", "turnout-signature": forged },
      body: report,
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    // The right secret but a timestamp 10 minutes old: a replay.
    const stale = await sign(TOKENS.agentSecret, report, Math.floor(Date.now() / 1000) - 600);
    const replay = await fetch(`${stack.worker.url}/v1/agent/reports`, {
      method: "POST",
      headers: { "content-type": "application/json", "turnout-signature": stale },
      body: report,
    });
    expect(replay.status).toBe(401);
    const after = await stack.view("egress-gw");
    expect(after.activeSide).toBe(before.activeSide);
    expect(after.lastEvents?.at(-1)?.seq).toBe(before.lastEvents?.at(-1)?.seq);
  }, 10_000);
  it("global-dr: the standby etcd takes over once consistent: sync stopped, platform DNS flipped, workloads restarted", async () => {
    const { etcd, bind } = stack;
    if (!etcd || !bind) throw new Error("the stack started no etcd or BIND");
    const primary = new Etcd3({ hosts: etcd.primary.url });
    const standby = new Etcd3({ hosts: etcd.standby.url });
    try {
      // The sandbox's synchronizer (a real etcdctl make-mirror) copies keys and the agent's heartbeat.
      await primary.put("/registry/e2e/before").value("1");
      await eventually(async () => (await standby.get("/registry/e2e/before").string()) === "1", "key mirrored");
      await eventually(async () => (await standby.get(HEARTBEAT_KEY).string()) !== null, "heartbeat mirrored");

      await stack.alert([{ target: "global-dr", side: "primary", status: "firing", at: Date.now() }]);
      const view = await settledOn("global-dr", "secondary", 30_000);
      expect(view.action).toMatchObject({ id: "global-dr:1", kind: "failover", status: "succeeded" });
      const report = await stack.agentReport("global-dr:1");
      expect(report?.steps.map((s) => `${s.name}:${s.status}`)).toEqual([
        "consistency:succeeded",
        "stop-sync:succeeded",
        "flip-dns:succeeded",
        "restart:succeeded",
        "follow-ups:succeeded",
      ]);
      expect(await queryRecord(bind.server, stack.recordOf("platform-dns"), "A")).toEqual([DNS.secondary]);

      // The sync is really stopped: a write on the old primary no longer reaches the standby.
      await primary.put("/registry/e2e/after").value("2");
      await new Promise((r) => setTimeout(r, 1500));
      expect(await standby.get("/registry/e2e/after").string()).toBeNull();
    } finally {
      primary.close();
      standby.close();
    }
  }, 45_000);
});
