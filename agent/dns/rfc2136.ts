/**
 * RFC 2136 dynamic updates signed with TSIG, and plain authoritative queries, over UDP (resent
 * while unanswered: one lost datagram must not fail a flip) with TCP fallback. Messages are
 * encoded with dns-packet; see real-components.md §1 for its quirks:
 * - no opcode field: UPDATE is `flags: 5 << 11` (it decodes as `opcode: 'UPDATE'`);
 * - ZONE section = questions, PREREQUISITE = answers, UPDATE = authorities;
 * - "delete an RRset" needs RDLENGTH 0, which only the raw `UNKNOWN_<n>` encoder produces.
 */
import { randomInt } from "node:crypto";
import { createSocket } from "node:dgram";
import { connect, isIPv6 } from "node:net";
import * as packet from "dns-packet";
import { DnsError, type DnsErrorCode } from "./errors.ts";
import { readName, signMessage, TSIG_ERRORS, type TsigKey, verifyResponse } from "./tsig.ts";

/** Record types turnout flips. */
export type FlipRecordType = "A" | "AAAA" | "CNAME";

const TYPE_CODE: Record<FlipRecordType, number> = { A: 1, AAAA: 28, CNAME: 5 };
/** RFC 1035 §4.2.1: UDP messages are limited to 512 bytes without EDNS. */
const UDP_LIMIT = 512;
const OPCODE_UPDATE = 5 << 11;

/** `host:port` or `[v6]:port` to its parts. */
export function parseServer(server: string): { host: string; port: number } {
  const m = /^\[([0-9a-fA-F:]+)\]:(\d{1,5})$/.exec(server) ?? /^([^\s:]+):(\d{1,5})$/.exec(server);
  const port = Number(m?.[2]);
  if (!m?.[1] || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new DnsError("DNS_CONFIG", `bad DNS server address ${JSON.stringify(server)} (expected host:port)`);
  }
  return { host: m[1], port };
}

/** Canonical form of a record value so equal values compare equal (case, trailing dot, IPv6 zeros). */
export function normalizeValue(type: FlipRecordType, value: string): string {
  const v = value.trim();
  if (type === "CNAME") return v.toLowerCase().replace(/\.$/, "");
  if (type === "AAAA") {
    try {
      return new URL(`http://[${v}]/`).hostname.replace(/^\[|\]$/g, "");
    } catch {
      return v.toLowerCase();
    }
  }
  return v;
}

/** Sorted, de-duplicated canonical values: two record sets are equal iff these arrays are. */
export function canonicalSet(type: FlipRecordType, values: readonly string[]): string[] {
  return [...new Set(values.map((v) => normalizeValue(type, v)))].sort();
}

/** Whether two value lists describe the same record set. */
export function sameSet(type: FlipRecordType, a: readonly string[], b: readonly string[]): boolean {
  const x = canonicalSet(type, a);
  const y = canonicalSet(type, b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

// ---- transport -------------------------------------------------------------------------------

function timeoutError(what: string, server: string, ms: number): DnsError {
  return new DnsError("DNS_TIMEOUT", `${what} to ${server}: no answer within ${ms} ms`);
}

/** The question (or, in an UPDATE, zone) section's first entry: lower-cased name, type, class. */
function questionOf(msg: Buffer): string | undefined {
  try {
    if (msg.length < 12 || msg.readUInt16BE(4) === 0) return undefined;
    const { name, next } = readName(msg, 12);
    if (next + 4 > msg.length) return undefined;
    return `${name.toLowerCase()}|${msg.readUInt16BE(next)}|${msg.readUInt16BE(next + 2)}`;
  } catch {
    return undefined;
  }
}

/**
 * Whether `response` answers `request` (RFC 5452 §9.1): same ID, the QR bit set, the same opcode
 * and the same question. Anything else is someone else's datagram, or a forgery, and is ignored.
 */
export function answers(request: Buffer, response: Buffer): boolean {
  if (response.length < 12 || response.readUInt16BE(0) !== request.readUInt16BE(0)) return false;
  const flags = response.readUInt16BE(2);
  if ((flags & 0x8000) === 0) return false;
  if (((flags >> 11) & 0xf) !== ((request.readUInt16BE(2) >> 11) & 0xf)) return false;
  const want = questionOf(request);
  // A TC answer may come header-only (no question); the TCP resend is matched in full.
  if ((flags & packet.TRUNCATED_RESPONSE) !== 0 && response.readUInt16BE(4) === 0) return true;
  return want !== undefined && questionOf(response) === want;
}

/** Copies of a UDP message sent before giving up, evenly spread over the exchange's timeout. */
const UDP_TRIES = 3;

/**
 * Sends `wire` over UDP and resends the identical message (same ID, same TSIG) every
 * timeout/UDP_TRIES until an answer with its ID arrives: one lost datagram must not fail the
 * exchange. Resending an UPDATE is safe, as its prerequisite makes a second copy fail instead of
 * applying twice (sendUpdate checks which happened). Resolves with the answer and the copies sent.
 */
function sendUdp(server: string, wire: Buffer, timeoutMs: number): Promise<{ msg: Buffer; copies: number }> {
  const { host, port } = parseServer(server);
  return new Promise((resolve, reject) => {
    const socket = createSocket(isIPv6(host) ? "udp6" : "udp4");
    let copies = 0;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const done = (err: Error | undefined, msg?: Buffer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.close();
      if (err) reject(err);
      else if (msg) resolve({ msg, copies });
    };
    const perCopy = Math.max(1, Math.floor(timeoutMs / UDP_TRIES));
    const sendCopy = () => {
      if (settled) return;
      if (copies === UDP_TRIES) {
        done(timeoutError(`DNS over UDP (${copies} copies sent)`, server, timeoutMs));
        return;
      }
      copies++;
      socket.send(wire);
      // The last wait takes what is left of the timeout.
      timer = setTimeout(sendCopy, copies === UDP_TRIES ? timeoutMs - perCopy * (UDP_TRIES - 1) : perCopy);
    };
    socket.on("error", (err) => done(new DnsError("DNS_NETWORK", `DNS over UDP to ${server}: ${err.message}`)));
    // Ignore datagrams that are not the answer to this message (RFC 5452 §9.1: match the ID and
    // the question). The first answer to any copy wins; answers to the other copies arrive at a
    // closed socket.
    socket.on("message", (msg) => {
      if (answers(wire, msg)) done(undefined, msg);
    });
    // Connected: the kernel delivers only datagrams from the server's address and port, so an
    // off-path spoofer must also guess the source port (RFC 5452 §4.5).
    socket.connect(port, host, sendCopy);
  });
}

function sendTcp(server: string, wire: Buffer, timeoutMs: number): Promise<Buffer> {
  const { host, port } = parseServer(server);
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let received = Buffer.alloc(0);
    const done = (err: Error | undefined, msg?: Buffer) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else if (msg) resolve(msg);
    };
    const timer = setTimeout(() => done(timeoutError("DNS over TCP", server, timeoutMs)), timeoutMs);
    socket.on("error", (err) => done(new DnsError("DNS_NETWORK", `DNS over TCP to ${server}: ${err.message}`)));
    socket.on("connect", () => {
      // RFC 1035 §4.2.2: each message is prefixed with a two-byte length.
      const len = Buffer.alloc(2);
      len.writeUInt16BE(wire.length);
      socket.write(Buffer.concat([len, wire]));
    });
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 2) return;
      const need = received.readUInt16BE(0);
      if (received.length >= need + 2) done(undefined, received.subarray(2, need + 2));
    });
    socket.on("end", () => done(new DnsError("DNS_NETWORK", `DNS over TCP to ${server}: connection closed early`)));
  });
}

/** Transport used for one exchange, reported so tests and logs can see the TCP fallback. */
export type Transport = "udp" | "tcp";

/** One exchange's answer and how it travelled. */
export interface Exchanged {
  response: Buffer;
  transport: Transport;
  /** The UDP answer had TC set and the message was sent again over TCP. */
  truncated: boolean;
  /** The message went out more than once over UDP (a copy or its answer was lost or late). */
  resent: boolean;
}

/**
 * Sends one message: UDP (resent while unanswered), or TCP directly when it exceeds 512 bytes;
 * retries over TCP when the UDP answer has the TC bit set (RFC 7766 §5).
 */
export async function exchange(
  server: string,
  wire: Buffer,
  timeoutMs: number,
  options: { forceTcp?: boolean } = {},
): Promise<Exchanged> {
  const overTcp = async () => {
    const response = await sendTcp(server, wire, timeoutMs);
    if (!answers(wire, response)) {
      throw new DnsError(
        "DNS_MALFORMED",
        `DNS over TCP to ${server}: the answer does not match the request's ID or question`,
      );
    }
    return response;
  };
  if (options.forceTcp || wire.length > UDP_LIMIT) {
    return { response: await overTcp(), transport: "tcp", truncated: false, resent: false };
  }
  const { msg, copies } = await sendUdp(server, wire, timeoutMs);
  const resent = copies > 1;
  // Header flags word, bit 9 = TC.
  if ((msg.readUInt16BE(2) & packet.TRUNCATED_RESPONSE) !== 0) {
    return { response: await overTcp(), transport: "tcp", truncated: true, resent };
  }
  return { response: msg, transport: "udp", truncated: false, resent };
}

/** A message ID from the CSPRNG (RFC 5452 §9.2: IDs must not be predictable). */
function randomId(): number {
  return randomInt(0, 0x10000);
}

function decode(response: Buffer, server: string): packet.DecodedPacket & { rcode?: string } {
  try {
    return packet.decode(response) as packet.DecodedPacket & { rcode?: string };
  } catch (err) {
    throw new DnsError("DNS_MALFORMED", `unparseable DNS response from ${server}: ${(err as Error).message}`);
  }
}

// ---- query -----------------------------------------------------------------------------------

/** Options for an authoritative lookup. */
export interface QueryOptions {
  /** Per-exchange timeout. @default 2000 */
  timeoutMs?: number;
  forceTcp?: boolean;
  /**
   * Sign the query with this key and accept only an answer signed with it: for queries to the
   * server the UPDATEs go to, so a forged answer cannot make a flip look done.
   */
  key?: TsigKey;
  /** Unix milliseconds, for the TSIG time. @default Date.now */
  now?: () => number;
}

/**
 * Asks one authoritative server (recursion not desired) for a name's A, AAAA or CNAME record set;
 * NXDOMAIN or no data is an empty list.
 */
export async function queryRecord(
  server: string,
  name: string,
  type: FlipRecordType,
  options: QueryOptions = {},
): Promise<string[]> {
  const timeoutMs = options.timeoutMs ?? 2000;
  const query = packet.encode({
    type: "query",
    id: randomId(),
    flags: 0, // RD = 0: ask the authoritative data only
    questions: [{ name, type, class: "IN" }],
  });
  const key = options.key;
  const now = options.now ?? Date.now;
  const signed = key ? signMessage(query, key, Math.floor(now() / 1000)) : undefined;
  const { response } = await exchange(server, signed?.wire ?? query, timeoutMs, options);
  const msg = decode(response, server);
  const rcode = msg.rcode ?? "NOERROR";
  if (key && signed)
    refuseUntrusted(response, signed.mac, key, Math.floor(now() / 1000), rcode, `query ${name} ${type} at ${server}`);
  if (rcode === "NXDOMAIN") return [];
  if (rcode !== "NOERROR") throw rcodeError(rcode, `query ${name} ${type} at ${server}`);
  const wanted = name.replace(/\.$/, "").toLowerCase();
  const values: string[] = [];
  for (const answer of msg.answers ?? []) {
    if (answer.type !== type || answer.name.toLowerCase() !== wanted) continue;
    values.push(String(answer.data));
  }
  return canonicalSet(type, values);
}

// ---- update ----------------------------------------------------------------------------------

/** Where and how to send updates. */
export interface Rfc2136Server {
  /** `host:port` of the primary. */
  server: string;
  zone: string;
  key: TsigKey;
  /** Per-exchange timeout. @default 5000 */
  timeoutMs?: number;
  /** Unix milliseconds, for the TSIG time. @default Date.now */
  now?: () => number;
}

/** One record-set replacement; `next` absent = prerequisite-only check (dry run). */
export interface RecordUpdate {
  name: string;
  type: FlipRecordType;
  ttl: number;
  /** The record set must hold exactly these values (RFC 2136 §2.4.2, value dependent). */
  expected: readonly string[];
  next?: readonly string[];
}

/** What the server said, for logs and the report. */
export interface UpdateResult {
  rcode: "NOERROR";
  transport: Transport;
  ms: number;
}

function rcodeError(rcode: string, what: string): DnsError {
  const map: Record<string, [DnsErrorCode, string]> = {
    NXRRSET: ["DNS_NXRRSET", "the record no longer holds the expected value (prerequisite failed)"],
    REFUSED: ["DNS_REFUSED", "the server refused (is updating allowed for this key?)"],
    SERVFAIL: ["DNS_SERVFAIL", "the server failed (SERVFAIL)"],
    NOTAUTH: ["DNS_NOTAUTH", "the server is not authoritative for the zone (NOTAUTH)"],
    NOTZONE: ["DNS_NOTZONE", "the record is outside the zone (NOTZONE)"],
  };
  const [code, text] = map[rcode] ?? ["DNS_RCODE", `the server answered ${rcode}`];
  return new DnsError(code, `${what}: ${text}`);
}

function tsigError(error: number, what: string): DnsError {
  const name = TSIG_ERRORS[error] ?? `TSIG error ${error}`;
  if (name === "BADSIG") {
    return new DnsError("DNS_BADSIG", `${what}: NOTAUTH(BADSIG): the TSIG secret does not match the server's key`);
  }
  if (name === "BADKEY") {
    return new DnsError("DNS_BADKEY", `${what}: NOTAUTH(BADKEY): the server does not know this TSIG key name`);
  }
  if (name === "BADTIME") {
    return new DnsError("DNS_BADTIME", `${what}: NOTAUTH(BADTIME): clocks differ by more than the TSIG fudge`);
  }
  return new DnsError("DNS_NOTAUTH", `${what}: NOTAUTH(${name})`);
}

/**
 * Throws unless a response to a signed request carries a valid signature of `key` (RFC 8945
 * §5.3.4): a TSIG error the server reports (BIND answers BADSIG/BADKEY unsigned) is named; any
 * other unsigned, badly signed, wrong-algorithm or stale answer is refused, whatever its rcode.
 */
function refuseUntrusted(
  response: Buffer,
  requestMac: Buffer,
  key: TsigKey,
  nowSeconds: number,
  rcode: string,
  what: string,
): void {
  const check = verifyResponse(response, requestMac, key, nowSeconds);
  // A TSIG error is a failure however it is signed (BADTIME comes signed, BADSIG/BADKEY not).
  if (rcode === "NOTAUTH" && check.tsig && check.tsig.error !== 0) throw tsigError(check.tsig.error, what);
  if (check.ok) return;
  switch (check.reason) {
    case "bad-mac":
    case "wrong-key":
    case "wrong-algorithm":
      throw new DnsError("DNS_RESPONSE_BADSIG", `${what}: the response's TSIG does not verify (tampered or forged)`);
    case "bad-time":
      throw new DnsError("DNS_BADTIME", `${what}: the response's TSIG time is outside the fudge`);
    case "unsigned":
      throw new DnsError("DNS_RESPONSE_UNSIGNED", `${what}: ${rcode} answer is not signed`);
  }
}

function deleteRrset(name: string, type: FlipRecordType): packet.Answer {
  // RFC 2136 §2.5.2: class ANY, TTL 0, RDLENGTH 0. `UNKNOWN_<n>` selects dns-packet's raw RDATA
  // encoder, the only one that writes an empty RDATA.
  return {
    name,
    type: `UNKNOWN_${TYPE_CODE[type]}`,
    class: "ANY",
    ttl: 0,
    data: Buffer.alloc(0),
  } as unknown as packet.Answer;
}

function rr(name: string, type: FlipRecordType, ttl: number, value: string): packet.Answer {
  return { name, type, class: "IN", ttl, data: value };
}

/** Encodes the unsigned UPDATE message (exported for tests and the bench). */
export function encodeUpdate(zone: string, update: RecordUpdate, id = randomId()): Buffer {
  // RFC 2136 §2.4.2: "RRset exists (value dependent)": class IN, TTL 0, one RR per expected value;
  // the whole set must match, so a concurrent change to any value fails the update.
  const prerequisites = update.expected.map((v) => rr(update.name, update.type, 0, v));
  const updates = update.next
    ? [deleteRrset(update.name, update.type), ...update.next.map((v) => rr(update.name, update.type, update.ttl, v))]
    : [];
  return packet.encode({
    type: "query",
    id,
    flags: OPCODE_UPDATE,
    questions: [{ name: zone, type: "SOA", class: "IN" }],
    answers: prerequisites,
    authorities: updates,
  });
}

/**
 * Sends one signed UPDATE: prerequisite on the expected values, then delete + add of the record
 * set in the same message (atomic on the server, RFC 2136 §3.7). Throws DnsError on any failure.
 */
export async function sendUpdate(target: Rfc2136Server, update: RecordUpdate): Promise<UpdateResult> {
  const now = target.now ?? Date.now;
  const timeoutMs = target.timeoutMs ?? 5000;
  const started = now();
  const what = `UPDATE ${update.name} ${update.type} at ${target.server}`;
  const unsigned = encodeUpdate(target.zone, update);
  const signed = signMessage(unsigned, target.key, Math.floor(now() / 1000));
  const { response, transport, truncated, resent } = await exchange(target.server, signed.wire, timeoutMs);
  const msg = decode(response, target.server);
  const rcode = msg.rcode ?? "NOERROR";
  // Only a signed answer says anything: an unsigned NOERROR would fake success, an unsigned
  // NXRRSET after a resend would send us to the query below, and an unsigned error is a forgery
  // or a TSIG failure the server reports (named by refuseUntrusted).
  refuseUntrusted(response, signed.mac, target.key, Math.floor(now() / 1000), rcode, what);
  if (rcode === "NXRRSET" && (truncated || resent) && update.next) {
    // The message reached the server more than once: a UDP copy answered with TC before the TCP
    // resend, or a copy whose answer was lost before a UDP resend. An earlier copy applied, the
    // later one finds the prerequisite gone. If the record now holds exactly our values, ours did:
    // asked over TCP and signed, so the answer is the server's.
    const current = await queryRecord(target.server, update.name, update.type, {
      timeoutMs,
      forceTcp: true,
      key: target.key,
      now,
    });
    if (sameSet(update.type, current, update.next)) return { rcode: "NOERROR", transport, ms: now() - started };
  }
  if (rcode !== "NOERROR") throw rcodeError(rcode, what);
  return { rcode: "NOERROR", transport, ms: now() - started };
}
