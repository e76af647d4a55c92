/**
 * Slack request signing (wire-formats §c, design §5b): `X-Slack-Signature: v0=<hex
 * HMAC-SHA256(signing secret, "v0:<X-Slack-Request-Timestamp>:<raw body>")>`, a 5-minute window
 * either way (python-slack-sdk rejects |now − ts| > 300), verified in constant time with
 * `crypto.subtle.verify` before the body is parsed.
 */

import { fromHex, hmacKey, toHex } from "../../../shared/signature.ts";

export const SLACK_TOLERANCE_SECONDS = 300;

export type SlackSignatureFailure = "missing" | "malformed" | "stale" | "future" | "mismatch" | "not-configured";

export type SlackSignatureCheck = { ok: true } | { ok: false; reason: SlackSignatureFailure };

const encoder = new TextEncoder();

/** Verifies a Slack request; `body` is the raw body exactly as received. */
export async function verifySlackSignature(
  secret: string | undefined,
  headers: { signature: string | null | undefined; timestamp: string | null | undefined },
  body: string,
  nowSeconds: number,
): Promise<SlackSignatureCheck> {
  if (!secret) return { ok: false, reason: "not-configured" };
  if (!headers.signature || !headers.timestamp) return { ok: false, reason: "missing" };
  if (!/^\d{1,12}$/.test(headers.timestamp) || !headers.signature.startsWith("v0=")) {
    return { ok: false, reason: "malformed" };
  }
  const mac = fromHex(headers.signature.slice(3));
  if (mac?.length !== 32) return { ok: false, reason: "malformed" };
  const skew = Number(headers.timestamp) - Math.floor(nowSeconds);
  if (skew < -SLACK_TOLERANCE_SECONDS) return { ok: false, reason: "stale" };
  if (skew > SLACK_TOLERANCE_SECONDS) return { ok: false, reason: "future" };
  const key = await hmacKey(secret, "verify");
  const ok = await crypto.subtle.verify("HMAC", key, mac, encoder.encode(`v0:${headers.timestamp}:${body}`));
  return ok ? { ok: true } : { ok: false, reason: "mismatch" };
}

/** Signs a body the way Slack does (tests and local tools). */
export async function signSlackRequest(secret: string, timestamp: number, body: string): Promise<string> {
  const mac = await crypto.subtle.sign(
    "HMAC",
    await hmacKey(secret, "sign"),
    encoder.encode(`v0:${timestamp}:${body}`),
  );
  return `v0=${toHex(mac)}`;
}

/** Why a Slack request was refused, for the 401 problem body. */
export function describeSlackFailure(reason: SlackSignatureFailure): string {
  switch (reason) {
    case "not-configured":
      return "SLACK_SIGNING_SECRET is not configured; Slack requests are refused";
    case "missing":
      return "missing X-Slack-Signature or X-Slack-Request-Timestamp header";
    case "malformed":
      return "malformed X-Slack-Signature (expected v0=<64 hex digits>) or timestamp";
    case "stale":
      return `X-Slack-Request-Timestamp is more than ${SLACK_TOLERANCE_SECONDS} s old (replay window)`;
    case "future":
      return `X-Slack-Request-Timestamp is more than ${SLACK_TOLERANCE_SECONDS} s in the future`;
    case "mismatch":
      return "X-Slack-Signature does not match the body and signing secret";
  }
}
