/**
 * The TargetObject's break-glass RPC (requestBreakGlass / resolveBreakGlass) in workerd: a pending
 * forced request executes exactly once, only by someone other than the requester, never after the
 * target's epoch moved or after it was resolved, and a refusal changes nothing.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { BREAK_GLASS_TTL_MS } from "../../worker/target/break-glass.ts";
import { useRecordingObject } from "./support/recording-object.ts";

const T0 = Date.parse("2026-11-22T10:00:00Z");
const rec = useRecordingObject({ start: T0 });

const NONCE = "0123456789abcdef0123456789abcdef";
const alice = { actorId: "UALICE", actor: "slack:UALICE(alice)" };
const bob = { actorId: "UBOB", actor: "slack:UBOB(bob)" };
const carol = { actorId: "UCAROL", actor: "slack:UCAROL(carol)" };

async function request(target = "slack-a", nonce = NONCE) {
  return env.TARGETS.getByName(target).requestBreakGlass(target, {
    nonce,
    command: "failover",
    requesterId: alice.actorId,
    requester: alice.actor,
    reason: "primary DC on fire, monitoring blind",
  });
}

describe("break-glass requests in the target's object", () => {
  it("records the request at the current epoch and phase without acting", async () => {
    expect(await request()).toEqual({
      epoch: 0,
      phase: "steady",
      activeSide: "primary",
      expiresAt: new Date(T0 + BREAK_GLASS_TTL_MS).toISOString(),
    });
    const stub = env.TARGETS.getByName("slack-a");
    await stub.settle();
    expect(rec.dispatched).toHaveLength(0);
    const { events } = await stub.events(0, 10);
    expect(events.map((e) => e.type)).toEqual(["breakglass.requested"]);
    expect(events[0]?.detail).toMatchObject({ requester: alice.actor, command: "failover", epoch: 0, nonce: NONCE });
  });

  it("refuses the requester's own approval and changes nothing", async () => {
    await request();
    const stub = env.TARGETS.getByName("slack-a");
    const before = await stub.events(0, 50);
    const r = await stub.resolveBreakGlass("slack-a", { nonce: NONCE, decision: "approve", epoch: 0, ...alice });
    expect(r).toMatchObject({ outcome: "self-approval" });
    expect("detail" in r && r.detail).toMatch(/second person must approve/);
    await stub.settle();
    expect(rec.dispatched).toHaveLength(0);
    expect(await stub.events(0, 50)).toEqual(before);
  });

  it("a second person's approval executes exactly one forced command; both actors are audited", async () => {
    await request();
    const stub = env.TARGETS.getByName("slack-a");
    const r = await stub.resolveBreakGlass("slack-a", { nonce: NONCE, decision: "approve", epoch: 0, ...bob });
    expect(r).toMatchObject({ outcome: "executed", command: "failover", requester: alice.actor });
    expect(r.view.phase).toBe("executing");
    await stub.settle();
    expect(rec.dispatched).toEqual([expect.objectContaining({ id: "slack-a:1", kind: "failover", force: true })]);
    expect(rec.dispatched[0]?.reason).toContain(alice.actor);
    expect(rec.dispatched[0]?.reason).toContain(bob.actor);
    const { events } = await stub.events(0, 50);
    expect(events.find((e) => e.type === "breakglass.approved")?.detail).toMatchObject({
      requester: alice.actor,
      approver: bob.actor,
    });
    expect(events.find((e) => e.type === "command.accepted")?.detail).toMatchObject({
      command: "failover",
      actor: bob.actor,
      force: true,
    });

    // The same button again, by anyone: already done, nothing changes.
    const again = await stub.resolveBreakGlass("slack-a", { nonce: NONCE, decision: "approve", epoch: 0, ...carol });
    expect(again).toMatchObject({ outcome: "already" });
    expect("detail" in again && again.detail).toMatch(/already done: this request was executed by slack:UBOB\(bob\)/);
    await stub.settle();
    expect(rec.dispatched).toHaveLength(1);
  });

  it("two approvers clicking at once still produce one forced action", async () => {
    await request();
    const stub = env.TARGETS.getByName("slack-a");
    const [a, b] = await Promise.all([
      stub.resolveBreakGlass("slack-a", { nonce: NONCE, decision: "approve", epoch: 0, ...bob }),
      stub.resolveBreakGlass("slack-a", { nonce: NONCE, decision: "approve", epoch: 0, ...carol }),
    ]);
    expect([a.outcome, b.outcome].sort()).toEqual(["already", "executed"]);
    await stub.settle();
    expect(rec.dispatched).toHaveLength(1);
  });

  it("is stale once the target's epoch moved, or after its time to live; nothing changes", async () => {
    await request();
    const stub = env.TARGETS.getByName("slack-a");
    await stub.command("slack-a", { command: "failover", actor: "operator" });
    await stub.settle();
    expect(rec.dispatched).toHaveLength(1);
    const r = await stub.resolveBreakGlass("slack-a", { nonce: NONCE, decision: "approve", epoch: 0, ...bob });
    expect(r).toMatchObject({ outcome: "stale" });
    expect("detail" in r && r.detail).toMatch(/epoch 0 then, 1 now/);
    await stub.settle();
    expect(rec.dispatched).toHaveLength(1);

    const other = "fedcba9876543210fedcba9876543210";
    await request("slack-b", other);
    rec.clock = T0 + BREAK_GLASS_TTL_MS + 1;
    const late = await env.TARGETS.getByName("slack-b").resolveBreakGlass("slack-b", {
      nonce: other,
      decision: "approve",
      epoch: 0,
      ...bob,
    });
    expect(late).toMatchObject({ outcome: "stale" });
    expect(rec.dispatched).toHaveLength(1);
  });

  it("cancel closes the request; a later approval is 'already done'; unknown nonces are refused", async () => {
    await request();
    const stub = env.TARGETS.getByName("slack-a");
    expect(
      await stub.resolveBreakGlass("slack-a", { nonce: NONCE, decision: "cancel", epoch: 0, ...alice }),
    ).toMatchObject({ outcome: "cancelled" });
    const after = await stub.resolveBreakGlass("slack-a", { nonce: NONCE, decision: "approve", epoch: 0, ...bob });
    expect(after).toMatchObject({ outcome: "already" });
    expect("detail" in after && after.detail).toMatch(/cancelled by slack:UALICE\(alice\)/);
    const unknown = await stub.resolveBreakGlass("slack-a", {
      nonce: "ffffffffffffffffffffffffffffffff",
      decision: "approve",
      epoch: 0,
      ...bob,
    });
    expect(unknown).toMatchObject({ outcome: "unknown" });
    await stub.settle();
    expect(rec.dispatched).toHaveLength(0);
  });

  it("an approval the machine refuses is closed as rejected, with the reason", async () => {
    const stub = env.TARGETS.getByName("slack-a");
    // A live drill's switch is executing (epoch 1) when the request is made and approved. (A
    // dry run would not refuse it: a real switch preempts a dry run, rule 11.)
    await stub.command("slack-a", { command: "drill", mode: "live", actor: "operator" });
    const nonce = "abababababababababababababababab";
    expect(await request("slack-a", nonce)).toMatchObject({ epoch: 1, phase: "executing" });
    const r = await stub.resolveBreakGlass("slack-a", { nonce, decision: "approve", epoch: 1, ...bob });
    expect(r).toMatchObject({ outcome: "rejected" });
    expect("reason" in r && r.reason).toMatch(/executing slack-a:1/);
    const again = await stub.resolveBreakGlass("slack-a", { nonce, decision: "approve", epoch: 1, ...carol });
    expect(again).toMatchObject({ outcome: "already" });
    expect("detail" in again && again.detail).toMatch(/rejected by the target/);
  });
});
