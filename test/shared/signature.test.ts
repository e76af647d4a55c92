import { describe, expect, it } from "vitest";
import { describeSignatureFailure, parseSignatureHeader, sign, verify } from "../../shared/signature.ts";

const secret = "s3cret-shared";
const body = JSON.stringify({ id: "egress-gw:3", target: "egress-gw" });
const now = 1_800_000_000;

describe("Turnout-Signature", () => {
  it("verifies a valid signature", async () => {
    const header = await sign(secret, body, now);
    expect(header).toMatch(/^t=1800000000,v1=[0-9a-f]{64}$/);
    expect(await verify([secret], header, body, now)).toEqual({ ok: true, timestamp: now });
  });

  it("signs byte bodies and string bodies alike", async () => {
    const header = await sign(secret, new TextEncoder().encode(body), now);
    expect(await verify([secret], header, body, now)).toMatchObject({ ok: true });
  });

  it("rejects a tampered body", async () => {
    const header = await sign(secret, body, now);
    expect(await verify([secret], header, `${body} `, now)).toEqual({ ok: false, reason: "mismatch" });
  });

  it("rejects a wrong secret", async () => {
    const header = await sign("another-secret", body, now);
    expect(await verify([secret], header, body, now)).toEqual({ ok: false, reason: "mismatch" });
  });

  it("rejects a timestamp more than 300 s old as expired (replay)", async () => {
    const header = await sign(secret, body, now - 301);
    expect(await verify([secret], header, body, now)).toEqual({ ok: false, reason: "expired" });
    expect(await verify([secret], await sign(secret, body, now - 300), body, now)).toMatchObject({ ok: true });
  });

  it("rejects a timestamp more than 300 s in the future", async () => {
    const header = await sign(secret, body, now + 301);
    expect(await verify([secret], header, body, now)).toEqual({ ok: false, reason: "future" });
  });

  it("rejects a missing header", async () => {
    expect(await verify([secret], null, body, now)).toEqual({ ok: false, reason: "missing" });
    expect(await verify([secret], "", body, now)).toEqual({ ok: false, reason: "missing" });
  });

  it.each([
    "garbage",
    "t=abc,v1=00",
    `t=${now}`,
    `v1=${"a".repeat(64)}`,
    `t=${now},v1=${"z".repeat(64)}`,
    `t=${now},v1=${"a".repeat(63)}`,
    `t=-5,v1=${"a".repeat(64)}`,
  ])("rejects the malformed header %s", async (header) => {
    expect(await verify([secret], header, body, now)).toEqual({ ok: false, reason: "malformed" });
  });

  it("gives every failure a distinct reason and text", () => {
    const reasons = ["missing", "malformed", "expired", "future", "mismatch"] as const;
    const texts = new Set(reasons.map(describeSignatureFailure));
    expect(texts.size).toBe(reasons.length);
  });

  it("accepts the next secret during a rotation, and only the listed ones", async () => {
    const signedByNext = await sign("next-secret", body, now);
    expect(await verify([secret, "next-secret"], signedByNext, body, now)).toMatchObject({ ok: true });
    expect(await verify([secret], signedByNext, body, now)).toEqual({ ok: false, reason: "mismatch" });
  });

  it("parses headers with surrounding spaces", () => {
    expect(parseSignatureHeader(` t=${now} , v1=${"ab".repeat(32)}`)?.timestamp).toBe(now);
  });
});
