/**
 * TSIG (RFC 8945) with HMAC-SHA256: signing a request and verifying the server's signed response.
 *
 * No npm package does this (real-components.md §1: dns-packet knows type 250 but has no TSIG RDATA
 * codec), so the wire format is written here over raw bytes. The message is encoded without its
 * TSIG record first, then the record is appended and ARCOUNT bumped, which is exactly the layout
 * the MAC covers (RFC 8945 §4.3.3: MAC over the message as it was before the TSIG was added).
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/** A TSIG key: name as configured in BIND (`key "<name>"`), secret as raw bytes. */
export interface TsigKey {
  name: string;
  algorithm: "hmac-sha256";
  secret: Buffer;
}

/** TSIG RR fields as they appear on the wire (RFC 8945 §4.2). */
export interface TsigRecord {
  keyName: string;
  algorithm: string;
  timeSigned: number;
  fudge: number;
  mac: Buffer;
  originalId: number;
  error: number;
  other: Buffer;
}

/** TSIG error codes in the TSIG RR's Error field (RFC 8945 §5.3.2, IANA DNS RCODEs 16-18). */
export const TSIG_ERRORS: Record<number, string> = { 16: "BADSIG", 17: "BADKEY", 18: "BADTIME", 22: "BADTRUNC" };

const TYPE_TSIG = 250;
const CLASS_ANY = 255;
/** RFC 8945 §10: 300 s is the recommended fudge. */
export const DEFAULT_FUDGE = 300;

/** Decodes the base64 secret `tsig-keygen` prints, rejecting anything that is not base64. */
export function parseTsigSecret(base64: string): Buffer {
  const trimmed = base64.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed) || trimmed.length % 4 !== 0) {
    throw new TypeError("TSIG secret is not base64");
  }
  return Buffer.from(trimmed, "base64");
}

/** A domain name in uncompressed wire format, lower-cased (RFC 8945 §4.3.3: canonical form). */
export function nameToWire(name: string): Buffer {
  const labels = name
    .replace(/\.$/, "")
    .split(".")
    .filter((l) => l.length > 0);
  const parts: Buffer[] = [];
  for (const label of labels) {
    const bytes = Buffer.from(label.toLowerCase(), "ascii");
    if (bytes.length > 63) throw new TypeError(`DNS label too long in ${name}`);
    parts.push(Buffer.from([bytes.length]), bytes);
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function u48(n: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUIntBE(n, 0, 6);
  return b;
}

/** The "TSIG variables" block appended to the message for the MAC (RFC 8945 §4.3.3). */
function tsigVariables(
  keyName: string,
  algorithm: string,
  timeSigned: number,
  fudge: number,
  error: number,
  other: Buffer,
) {
  const fixed = Buffer.alloc(2 + 4);
  fixed.writeUInt16BE(CLASS_ANY, 0);
  fixed.writeUInt32BE(0, 2); // TTL 0
  return Buffer.concat([
    nameToWire(keyName),
    fixed,
    nameToWire(algorithm),
    u48(timeSigned),
    u16(fudge),
    u16(error),
    u16(other.length),
    other,
  ]);
}

function hmac(key: TsigKey, ...parts: Buffer[]): Buffer {
  const h = createHmac("sha256", key.secret);
  for (const p of parts) h.update(p);
  return h.digest();
}

function algorithmName(key: TsigKey): string {
  return `${key.algorithm}.`;
}

/** Encodes a TSIG resource record (name, type, class, TTL, RDATA) for appending to a message. */
function encodeTsigRecord(rec: TsigRecord): Buffer {
  const rdata = Buffer.concat([
    nameToWire(rec.algorithm),
    u48(rec.timeSigned),
    u16(rec.fudge),
    u16(rec.mac.length),
    rec.mac,
    u16(rec.originalId),
    u16(rec.error),
    u16(rec.other.length),
    rec.other,
  ]);
  const head = Buffer.alloc(10);
  head.writeUInt16BE(TYPE_TSIG, 0);
  head.writeUInt16BE(CLASS_ANY, 2);
  head.writeUInt32BE(0, 4);
  head.writeUInt16BE(rdata.length, 8);
  return Buffer.concat([nameToWire(rec.keyName), head, rdata]);
}

/** Result of signing: the message to send and the request MAC the response's MAC chains on. */
export interface SignedMessage {
  wire: Buffer;
  mac: Buffer;
}

/**
 * Signs an encoded DNS message (without TSIG) and returns it with the TSIG record appended.
 * `timeSigned` is unix seconds. With `requestMac` the message is a response to that request and
 * its MAC chains on the request's (RFC 8945 §4.3.1), as a server signs (the sandbox and tests).
 */
export function signMessage(
  message: Buffer,
  key: TsigKey,
  timeSigned: number,
  fudge = DEFAULT_FUDGE,
  requestMac?: Buffer,
): SignedMessage {
  if (message.length < 12) throw new TypeError("DNS message shorter than its header");
  const alg = algorithmName(key);
  const chain = requestMac ? [u16(requestMac.length), requestMac] : [];
  const mac = hmac(key, ...chain, message, tsigVariables(key.name, alg, timeSigned, fudge, 0, Buffer.alloc(0)));
  const record = encodeTsigRecord({
    keyName: key.name,
    algorithm: alg,
    timeSigned,
    fudge,
    mac,
    originalId: message.readUInt16BE(0),
    error: 0,
    other: Buffer.alloc(0),
  });
  const out = Buffer.concat([message, record]);
  out.writeUInt16BE(message.readUInt16BE(10) + 1, 10);
  return { wire: out, mac };
}

// ---- raw message walking (dns-packet's decode does not report record offsets) ----------------

function skipName(buf: Buffer, offset: number): number {
  let off = offset;
  for (;;) {
    const len = buf[off];
    if (len === undefined) throw new RangeError("truncated name");
    if (len === 0) return off + 1;
    if ((len & 0xc0) === 0xc0) return off + 2;
    off += len + 1;
  }
}

/** A (possibly compressed) domain name at `offset`, and where the data after it starts. */
export function readName(buf: Buffer, offset: number): { name: string; next: number } {
  const labels: string[] = [];
  let off = offset;
  let next = -1;
  for (let hops = 0; hops < 64; hops++) {
    const len = buf[off];
    if (len === undefined) throw new RangeError("truncated name");
    if (len === 0) {
      return { name: labels.join("."), next: next === -1 ? off + 1 : next };
    }
    if ((len & 0xc0) === 0xc0) {
      if (next === -1) next = off + 2;
      off = buf.readUInt16BE(off) & 0x3fff;
      continue;
    }
    labels.push(buf.subarray(off + 1, off + 1 + len).toString("ascii"));
    off += len + 1;
  }
  throw new RangeError("name compression loop");
}

/** Where the last additional record starts, and the whole record decoded if it is a TSIG. */
export function findTsig(buf: Buffer): { offset: number; record: TsigRecord } | undefined {
  if (buf.length < 12) return undefined;
  const qd = buf.readUInt16BE(4);
  const rrCount = buf.readUInt16BE(6) + buf.readUInt16BE(8) + buf.readUInt16BE(10);
  if (buf.readUInt16BE(10) === 0) return undefined;
  let off = 12;
  for (let i = 0; i < qd; i++) off = skipName(buf, off) + 4;
  for (let i = 0; i < rrCount - 1; i++) {
    off = skipName(buf, off);
    off += 10 + buf.readUInt16BE(off + 8);
  }
  const start = off;
  const owner = readName(buf, off);
  off = owner.next;
  if (buf.readUInt16BE(off) !== TYPE_TSIG) return undefined;
  off += 10;
  const alg = readName(buf, off);
  off = alg.next;
  const timeSigned = buf.readUIntBE(off, 6);
  const fudge = buf.readUInt16BE(off + 6);
  const macSize = buf.readUInt16BE(off + 8);
  off += 10;
  const mac = buf.subarray(off, off + macSize);
  off += macSize;
  const originalId = buf.readUInt16BE(off);
  const error = buf.readUInt16BE(off + 2);
  const otherLen = buf.readUInt16BE(off + 4);
  const other = buf.subarray(off + 6, off + 6 + otherLen);
  if (off + 6 + otherLen > buf.length) throw new RangeError("truncated TSIG record");
  return {
    offset: start,
    record: { keyName: owner.name, algorithm: alg.name, timeSigned, fudge, mac, originalId, error, other },
  };
}

/** Outcome of checking a response's TSIG. */
export type ResponseVerification =
  | { ok: true; tsig: TsigRecord }
  | { ok: false; reason: "unsigned" | "bad-mac" | "wrong-key" | "wrong-algorithm" | "bad-time"; tsig?: TsigRecord };

/**
 * Verifies a signed response (RFC 8945 §5.3): HMAC over the request MAC (length-prefixed), the
 * response without its TSIG (ARCOUNT − 1, ID restored to the original ID) and the TSIG variables.
 * The algorithm must be the key's (RFC 8945 §5.2.1: a MAC is only as strong as the algorithm the
 * receiver expects). `now` is unix seconds; the response's time must be within OUR fudge
 * (DEFAULT_FUDGE), not the one the response carries (RFC 8945 §5.2.3 uses the local fudge).
 */
export function verifyResponse(response: Buffer, requestMac: Buffer, key: TsigKey, now: number): ResponseVerification {
  const found = findTsig(response);
  if (!found) return { ok: false, reason: "unsigned" };
  const { offset, record } = found;
  if (record.keyName.toLowerCase() !== key.name.replace(/\.$/, "").toLowerCase()) {
    return { ok: false, reason: "wrong-key", tsig: record };
  }
  if (record.mac.length === 0) return { ok: false, reason: "unsigned", tsig: record };
  if (record.algorithm.replace(/\.$/, "").toLowerCase() !== key.algorithm) {
    return { ok: false, reason: "wrong-algorithm", tsig: record };
  }
  const body = Buffer.from(response.subarray(0, offset));
  body.writeUInt16BE(record.originalId, 0);
  body.writeUInt16BE(body.readUInt16BE(10) - 1, 10);
  const expected = hmac(
    key,
    u16(requestMac.length),
    requestMac,
    body,
    tsigVariables(record.keyName, record.algorithm, record.timeSigned, record.fudge, record.error, record.other),
  );
  if (expected.length !== record.mac.length || !timingSafeEqual(expected, record.mac)) {
    return { ok: false, reason: "bad-mac", tsig: record };
  }
  if (Math.abs(now - record.timeSigned) > DEFAULT_FUDGE) return { ok: false, reason: "bad-time", tsig: record };
  return { ok: true, tsig: record };
}
