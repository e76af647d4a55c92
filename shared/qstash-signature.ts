/**
 * `Upstash-Signature` verification (design §6, wire-formats.md §d), for both sides: the agent
 * checks actions QStash delivers, the worker checks QStash's failure callbacks. `Receiver` from
 * `@upstash/qstash` checks the HS256 JWT with the current
 * signing key, then the next one (key rotation), the issuer, the body hash and, when a URL is
 * configured, the `sub` claim.
 */
import { Receiver } from "@upstash/qstash";

export const UPSTASH_SIGNATURE_HEADER = "Upstash-Signature";

export interface QstashKeys {
  current: string;
  /** During a rotation QStash signs with the next key; without one, the current key is reused. */
  next?: string;
}

export type QstashCheck = { ok: true } | { ok: false; reason: "upstash-missing" | "upstash-invalid"; detail: string };

/** Reads `QSTASH_CURRENT_SIGNING_KEY` / `QSTASH_NEXT_SIGNING_KEY`; undefined when QStash is not in use. */
export function qstashKeysFromEnv(env: {
  QSTASH_CURRENT_SIGNING_KEY?: string | undefined;
  QSTASH_NEXT_SIGNING_KEY?: string | undefined;
}): QstashKeys | undefined {
  const current = env.QSTASH_CURRENT_SIGNING_KEY;
  if (!current) return undefined;
  const next = env.QSTASH_NEXT_SIGNING_KEY;
  return next ? { current, next } : { current };
}

/** Verifies an Upstash-Signature over the raw body; `url` is the expected `sub` claim when given. */
export async function verifyUpstashSignature(
  keys: QstashKeys,
  signature: string | null | undefined,
  rawBody: string,
  url?: string,
): Promise<QstashCheck> {
  if (!signature) return { ok: false, reason: "upstash-missing", detail: `missing ${UPSTASH_SIGNATURE_HEADER} header` };
  // Receiver falls back to environment variables unless both keys are given, and would switch
  // to QStash dev mode when QSTASH_DEV is set; pin both so only the configured keys count.
  const receiver = new Receiver({
    currentSigningKey: keys.current,
    nextSigningKey: keys.next ?? keys.current,
    devMode: false,
  });
  try {
    await receiver.verify({ signature, body: rawBody, ...(url ? { url } : {}) });
    return { ok: true };
  } catch (err) {
    return {
      ok: false,
      reason: "upstash-invalid",
      detail: `${UPSTASH_SIGNATURE_HEADER} does not verify: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
}
