/**
 * Owed plan steps in the object (design §11.6): a step the agent skipped with
 * `ifUnreachable: "skip"` is shown in the view and the sentence, paged once (warning, key
 * `turnout/<target>/owed/<action id>:<step>`), and holds the automatic failback until the
 * agent's re-sent report says it ran; then the page resolves and the failback goes by itself.
 * The receivers are local HTTP servers that validate every request; time is the object's clock.
 */
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import type { WorkerConfig } from "../../shared/config.ts";
import type { ActionRequest, StepReport } from "../../shared/protocol.ts";
import { TargetObject } from "../../worker/target/target-object.ts";
import { sentenceText, targetSentence } from "../../worker/target/target-sentences.ts";
import { drained, pagingConfig, pdActions, type Receiver, receiver, signals, sinksOf } from "./support/paging.ts";
import { useRecordingObject } from "./support/recording-object.ts";
import { succeededReport } from "./support/reports.ts";

const T0 = Date.parse("2026-11-22T03:00:00Z");
const rec = useRecordingObject({ start: T0 });
let config: WorkerConfig;
let r: Receiver;

beforeEach(() => {
  r = receiver("owed");
  if (TargetObject.testing) TargetObject.testing.config = () => config;
});

const shift: StepReport = { name: "shift-weights", status: "succeeded" };
const owed: StepReport = {
  name: "scale-old-primary",
  status: "skipped",
  owed: true,
  detail: "owed: cluster old-primary does not answer; the step runs once it answers",
};
const ran: StepReport = {
  name: "scale-old-primary",
  status: "succeeded",
  detail: "owed since 2026-11-22T03:00:35.000Z, done at 2026-11-22T04:00:00.000Z: scaled to 0",
};

function lastDispatch(): ActionRequest {
  const req = rec.dispatched.at(-1);
  if (!req) throw new Error("nothing dispatched");
  return req;
}

describe("owed plan steps in the object", () => {
  it("are shown, paged once, hold the automatic failback, and resolve when the agent reports them done", async () => {
    const t = "owed-a";
    config = pagingConfig([t], sinksOf(r, { pagerduty: true }), {
      failback: "auto",
      cooldownSeconds: 600,
      failbackAfterSeconds: 300,
    });
    const stub = env.TARGETS.getByName(t);
    await signals(rec, t, "primary", "firing");
    await rec.fireAlarm(t, T0 + 30_000);
    const failover = lastDispatch();
    expect(failover.kind).toBe("failover");
    rec.clock = T0 + 35_000;
    await stub.report(t, succeededReport(failover, rec.clock, [shift, owed]));
    await drained(t);

    const key = `turnout/${t}/owed/${failover.id}:scale-old-primary`;
    let view = await stub.view(t);
    expect(view.activeSide).toBe("secondary");
    expect(view.owed).toEqual([
      {
        action: failover.id,
        step: "scale-old-primary",
        since: new Date(T0 + 35_000).toISOString(),
        detail: owed.detail,
      },
    ]);
    let log = await r.log();
    expect(pdActions(log)).toEqual([["trigger", key]]);
    const trigger = log.find((x) => x.api === "pagerduty")?.json as {
      payload: { severity: string; summary: string; custom_details: { what_to_do: string } };
    };
    expect(trigger.payload.severity).toBe("warning");
    expect(trigger.payload.summary).toContain(
      "1 step owed: scale-old-primary (cluster old-primary was unreachable); it runs when that cluster answers",
    );

    // Primary recovers; past the cooldown the failback would go, but the step is owed.
    rec.clock = T0 + 40_000;
    await signals(rec, t, "primary", "resolved");
    await rec.fireAlarm(t, T0 + 35_000 + 600_000);
    await rec.fireAlarm(t, T0 + 3600_000);
    expect(rec.dispatched.map((d) => d.kind)).toEqual(["failover"]);
    view = await stub.view(t);
    expect(view.blocked).toBe("owed-steps");
    const sentence = sentenceText(
      targetSentence(view, {
        now: rec.clock,
        policy: { holdSeconds: 30, flap: { windowSeconds: 600 }, maxAutoActionsPerDay: 3, approval: "auto" },
      }),
      rec.clock,
    );
    expect(sentence).toBe(
      "blocked: steady on secondary; the automatic failback to primary waits until the owed steps are done (a manual failback still goes); 1 step owed: scale-old-primary (cluster old-primary was unreachable); it runs when that cluster answers",
    );
    const { events } = await stub.events(0, 1000);
    expect(events.filter((e) => e.type === "failback.blocked")).toHaveLength(1);

    // The agent ran the step once old-primary answered and re-sent the action's report.
    rec.clock = T0 + 3600_000 + 5_000;
    await stub.report(t, succeededReport(failover, rec.clock, [shift, ran]));
    await drained(t);
    view = await stub.view(t);
    expect(view.owed).toEqual([]);
    expect(pdActions(await r.log())).toEqual([
      ["trigger", key],
      ["resolve", key],
    ]);
    const failback = lastDispatch();
    expect(failback).toMatchObject({ kind: "failback", to: "primary" });
    log = await r.log();
    for (const x of log) expect(x.errors).toEqual([]);
  });

  it("a manual failback still goes while a step is owed", async () => {
    const t = "owed-b";
    config = pagingConfig([t], sinksOf(r, { pagerduty: true }), { failback: "auto" });
    const stub = env.TARGETS.getByName(t);
    expect((await stub.command(t, { command: "failover", actor: "alice" })).applied).toBe(true);
    await stub.settle();
    const failover = lastDispatch();
    rec.clock = T0 + 5_000;
    await stub.report(t, succeededReport(failover, rec.clock, [shift, owed]));
    const result = await stub.command(t, { command: "failback", actor: "alice" });
    expect(result.rejected).toBeUndefined();
    expect(result.applied).toBe(true);
    expect(lastDispatch()).toMatchObject({ kind: "failback", to: "primary" });
    expect(result.view.owed?.map((o) => o.step)).toEqual(["scale-old-primary"]);
  });
});
