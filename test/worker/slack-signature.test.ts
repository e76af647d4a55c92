import { describe, expect, it } from "vitest";
import { signSlackRequest, verifySlackSignature } from "../../worker/http/slack/signature.ts";
import vectorBody from "../fixtures/slack/slack-slash-command-signing-vector.txt?raw";

// Slack's published example ("Verifying requests from Slack"), see test/fixtures/slack.
const secret = "8f742231b10e8888abcd99yyyzzz85a5";
const timestamp = "1531420618";
const signature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
const now = 1531420618;

describe("Slack request signature (inside workerd)", () => {
  it("verifies the published test vector", async () => {
    expect(vectorBody.endsWith("\n")).toBe(false);
    expect(await verifySlackSignature(secret, { signature, timestamp }, vectorBody, now)).toEqual({ ok: true });
    expect(await signSlackRequest(secret, Number(timestamp), vectorBody)).toBe(signature);
  });

  it.each([
    ["a tampered body", { signature, timestamp }, `${"x"}${vectorBody}`, secret, now, "mismatch"],
    ["a wrong secret", { signature, timestamp }, vectorBody, "not-the-secret", now, "mismatch"],
    ["a stale timestamp (> 5 min)", { signature, timestamp }, vectorBody, secret, now + 301, "stale"],
    ["a future timestamp (> 5 min)", { signature, timestamp }, vectorBody, secret, now - 301, "future"],
    ["a missing signature", { signature: null, timestamp }, vectorBody, secret, now, "missing"],
    ["a missing timestamp", { signature, timestamp: undefined }, vectorBody, secret, now, "missing"],
    ["a malformed signature", { signature: "v1=abc", timestamp }, vectorBody, secret, now, "malformed"],
    ["no configured secret", { signature, timestamp }, vectorBody, undefined, now, "not-configured"],
  ])("rejects %s", async (_name, headers, body, key, at, reason) => {
    expect(await verifySlackSignature(key, headers, body, at)).toEqual({ ok: false, reason });
  });
});
