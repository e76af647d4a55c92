/**
 * `Turnout-Signature` (design §6): `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
 *
 * Web Crypto only, so the same module runs in workerd and in Node. Verification uses
 * `crypto.subtle.verify`, which compares the MAC in constant time, and always runs before the
 * body is parsed.
 */

export const SIGNATURE_HEADER = "Turnout-Signature";

/** How far a signature's timestamp may be from now, either way (design §6). */
export const SIGNATURE_TOLERANCE_SECONDS = 300;

export type SignatureFailure = "missing" | "malformed" | "expired" | "future" | "mismatch";

export type SignatureCheck = { ok: true; timestamp: number } | { ok: false; reason: SignatureFailure };

const encoder = new TextEncoder();

/** An HMAC-SHA256 key from a secret (text or raw bytes); also used by Slack signing and status-page sessions. */
export async function hmacKey(secret: string | BufferSource, usage: "sign" | "verify"): Promise<CryptoKey> {
  const raw = typeof secret === "string" ? encoder.encode(secret) : secret;
  return crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, [usage]);
}

function signedPayload(timestamp: number, body: string | Uint8Array): Uint8Array<ArrayBuffer> {
  const prefix = encoder.encode(`${timestamp}.`);
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  const out = new Uint8Array(prefix.length + bytes.length);
  out.set(prefix, 0);
  out.set(bytes, prefix.length);
  return out;
}

/** Lower-case hex of a MAC. */
export function toHex(buf: ArrayBuffer): string {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The bytes of a non-empty, even-length hex string; undefined for anything else. */
export function fromHex(hex: string): Uint8Array<ArrayBuffer> | undefined {
  if (hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-f]+$/i.test(hex)) return undefined;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/**
 * Signs a raw body.
 * @example headers.set(SIGNATURE_HEADER, await sign(secret, body, Math.floor(Date.now() / 1000)))
 */
export async function sign(secret: string, body: string | Uint8Array, nowSeconds: number): Promise<string> {
  const t = Math.floor(nowSeconds);
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(secret, "sign"), signedPayload(t, body));
  return `t=${t},v1=${toHex(mac)}`;
}

/** Parses `t=…,v1=…`; several `v1` entries are allowed (a sender mid-rotation may send two). */
export function parseSignatureHeader(
  header: string,
): { timestamp: number; macs: Uint8Array<ArrayBuffer>[] } | undefined {
  let timestamp: number | undefined;
  const macs: Uint8Array<ArrayBuffer>[] = [];
  for (const part of header.split(",")) {
    const eq = part.indexOf("=");
    if (eq < 0) return undefined;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === "t") {
      if (!/^\d{1,12}$/.test(value)) return undefined;
      timestamp = Number(value);
    } else if (key === "v1") {
      const mac = fromHex(value);
      if (mac?.length !== 32) return undefined;
      macs.push(mac);
    }
  }
  if (timestamp === undefined || macs.length === 0) return undefined;
  return { timestamp, macs };
}

/**
 * Verifies a signature header against one or more secrets (current first, then the next one
 * during a rotation). Each failure has its own reason so logs say what went wrong.
 */
export async function verify(
  secrets: readonly string[],
  header: string | null | undefined,
  body: string | Uint8Array,
  nowSeconds: number,
  options: { maxAgeSeconds?: number } = {},
): Promise<SignatureCheck> {
  if (!header) return { ok: false, reason: "missing" };
  const parsed = parseSignatureHeader(header);
  if (!parsed) return { ok: false, reason: "malformed" };
  const skew = parsed.timestamp - Math.floor(nowSeconds);
  // The past may be widened (QStash redelivers for hours, design §6); the future never is.
  if (skew < -(options.maxAgeSeconds ?? SIGNATURE_TOLERANCE_SECONDS)) return { ok: false, reason: "expired" };
  if (skew > SIGNATURE_TOLERANCE_SECONDS) return { ok: false, reason: "future" };
  const payload = signedPayload(parsed.timestamp, body);
  for (const secret of secrets) {
    if (!secret) continue;
    const key = await hmacKey(secret, "verify");
    for (const mac of parsed.macs) {
      // subtle.verify compares in constant time.
      if (await crypto.subtle.verify("HMAC", key, mac, payload)) return { ok: true, timestamp: parsed.timestamp };
    }
  }
  return { ok: false, reason: "mismatch" };
}

/**
 * Signs a GET request: the signed payload is the request path (e.g. `/v1/actions/egress-gw:3`,
 * exactly as sent, percent-encoding included) in place of a body (design §6).
 */
export function signPath(secret: string, path: string, nowSeconds: number): Promise<string> {
  return sign(secret, path, nowSeconds);
}

/** Human-readable text for a failed check, used in 401 problem bodies and logs. */
export function describeSignatureFailure(reason: SignatureFailure): string {
  switch (reason) {
    case "missing":
      return `missing ${SIGNATURE_HEADER} header`;
    case "malformed":
      return `malformed ${SIGNATURE_HEADER} header (expected t=<unix seconds>,v1=<64 hex digits>)`;
    case "expired":
      return `signature timestamp is more than ${SIGNATURE_TOLERANCE_SECONDS} s old (replay window)`;
    case "future":
      return `signature timestamp is more than ${SIGNATURE_TOLERANCE_SECONDS} s in the future`;
    case "mismatch":
      return "signature does not match the body and shared secret";
  }
}
