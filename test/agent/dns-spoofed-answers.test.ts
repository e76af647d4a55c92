/**
 * Off-path and on-path forgeries against the RFC 2136 client (design §7, issue 16): an answer
 * from another port, with the wrong ID or for another question is ignored (the socket is
 * connected to the server and answers are matched on ID and question); queries to the UPDATE's
 * server are TSIG-signed and an unsigned answer to them is refused, so a forged unsigned NXRRSET
 * after a resend plus a forged "record holds your values" cannot make a flip succeed while BIND
 * never changed. Raw sockets on 127.0.0.1, as in dns-rfc2136-wire.test.ts.
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { createServer, type Server } from "node:net";
import * as packet from "dns-packet";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { queryRecord, sendUpdate } from "../../agent/dns/rfc2136.ts";
import { parseTsigSecret, readName, signMessage, type TsigKey, verifyResponse } from "../../agent/dns/tsig.ts";
import { createDnsFlipExecutor } from "../../agent/executors/dns-flip.ts";
import { type DnsFlipTarget, DnsFlipTargetSchema } from "../../shared/config.ts";
import { ActionRequestSchema } from "../../shared/protocol.ts";
import { type BindServer, startBind } from "../support/bind.ts";
import { freePort } from "../support/free-port.ts";
import { MapMemory } from "../support/map-memory.ts";
import { runSteps } from "../support/run-steps.ts";
import { actionRequest } from "../support/test-executors.ts";

const PRIMARY = "172.30.41.193";
const SECONDARY = "172.30.41.194";
const EVIL = "203.0.113.66";

let bind: BindServer;
let key: TsigKey;
beforeAll(async () => {
  bind = await startBind({ records: [`www IN A ${PRIMARY}`, `flip IN A ${PRIMARY}`] });
  key = { name: bind.keyName, algorithm: "hmac-sha256", secret: parseTsigSecret(bind.secret) };
});
afterAll(async () => {
  await bind?.stop();
});
const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

async function udpSocket(port = 0): Promise<Socket> {
  const s = createSocket("udp4");
  await new Promise<void>((resolve, reject) => {
    s.once("error", reject);
    s.bind(port, "127.0.0.1", () => resolve());
  });
  closers.push(() => s.close());
  return s;
}

/** An answer to `query` (its ID and question unless overridden) saying the name holds `value`. */
function answerTo(query: Buffer, value: string, override: { id?: number; name?: string } = {}): Buffer {
  const q = packet.decode(query);
  const question = q.questions?.[0];
  if (!question) throw new Error("query without a question");
  const name = override.name ?? question.name;
  return packet.encode({
    type: "response",
    id: override.id ?? q.id ?? 0,
    flags: packet.AUTHORITATIVE_ANSWER,
    questions: [{ ...question, name }],
    answers: [{ name, type: "A", class: "IN", ttl: 60, data: value }],
  });
}

/**
 * A server on a random port that answers every query with `value`, after `delayMs`, and calls
 * `before` first (where a test sends its forgeries, which must then lose to the real answer).
 */
async function slowServer(
  value: string,
  delayMs: number,
  before: (query: Buffer, client: RemoteInfo, server: Socket) => void,
): Promise<string> {
  const server = await udpSocket();
  server.on("message", (query, client) => {
    before(query, client, server);
    setTimeout(() => server.send(answerTo(query, value), client.port, client.address), delayMs);
  });
  return `127.0.0.1:${server.address().port}`;
}

describe("answers that are not the server's answer to this query are ignored", () => {
  it("a spoofed answer from another port, with the right ID and question, loses to the real one", async () => {
    const spoofer = await udpSocket();
    const server = await slowServer(PRIMARY, 150, (query, client) => {
      spoofer.send(answerTo(query, EVIL), client.port, client.address);
    });
    expect(await queryRecord(server, "www.example.test", "A", { timeoutMs: 1500 })).toEqual([PRIMARY]);
  });

  it("an answer from the server's own port with the wrong ID is ignored", async () => {
    const server = await slowServer(PRIMARY, 150, (query, client, socket) => {
      const id = (query.readUInt16BE(0) + 1) & 0xffff;
      socket.send(answerTo(query, EVIL, { id }), client.port, client.address);
    });
    expect(await queryRecord(server, "www.example.test", "A", { timeoutMs: 1500 })).toEqual([PRIMARY]);
  });

  it("an answer with the right ID for another question is ignored", async () => {
    const server = await slowServer(PRIMARY, 150, (query, client, socket) => {
      socket.send(answerTo(query, EVIL, { name: "evil.example.test" }), client.port, client.address);
      // The same name with a non-response (QR clear) header is not an answer either.
      const echoed = answerTo(query, EVIL);
      echoed.writeUInt16BE(echoed.readUInt16BE(2) & 0x7fff, 2);
      socket.send(echoed, client.port, client.address);
    });
    expect(await queryRecord(server, "www.example.test", "A", { timeoutMs: 1500 })).toEqual([PRIMARY]);
  });

  it("query IDs are not predictable: a thousand queries use hundreds of distinct IDs", async () => {
    const ids = new Set<number>();
    const server = await udpSocket();
    server.on("message", (query, client) => {
      ids.add(query.readUInt16BE(0));
      server.send(answerTo(query, PRIMARY), client.port, client.address);
    });
    const address = `127.0.0.1:${server.address().port}`;
    for (let i = 0; i < 1000; i++) await queryRecord(address, "www.example.test", "A", { timeoutMs: 1000 });
    // Math.random would pass this too; the point is no fixed or sequential ID. randomInt is in the code.
    expect(ids.size).toBeGreaterThan(900);
  });
});

/**
 * A man in the middle in front of BIND that lets reads through until the first UPDATE, drops that
 * UPDATE, answers its resend with a forged unsigned NXRRSET, and from then on answers every query
 * (UDP and TCP) itself, unsigned, with `forged`: "the record already holds your new values".
 */
async function forgingProxy(forged: string): Promise<{ server: string; updatesSeen: () => number }> {
  const port = await freePort();
  const udp = await udpSocket(port);
  let updates = 0;
  const isUpdate = (msg: Buffer) => ((msg.readUInt16BE(2) >> 11) & 0xf) === 5;
  // From raw bytes (dns-packet cannot decode an UPDATE's empty-RDATA delete): the UPDATE's
  // header and zone section, flags QR | opcode UPDATE | rcode NXRRSET (8), no other records.
  const forgedNxrrset = (update: Buffer) => {
    const zoneEnd = readName(update, 12).next + 4;
    const out = Buffer.from(update.subarray(0, zoneEnd));
    out.writeUInt16BE(0x8000 | (5 << 11) | 8, 2);
    out.writeUInt16BE(0, 6);
    out.writeUInt16BE(0, 8);
    out.writeUInt16BE(0, 10);
    return out;
  };
  udp.on("message", (msg, client) => {
    if (isUpdate(msg)) {
      updates++;
      if (updates > 1) udp.send(forgedNxrrset(msg), client.port, client.address);
      return;
    }
    if (updates > 0) {
      udp.send(answerTo(msg, forged), client.port, client.address);
      return;
    }
    const upstream = createSocket("udp4");
    upstream.on("message", (res) => {
      upstream.close();
      udp.send(res, client.port, client.address);
    });
    upstream.send(msg, bind.port, "127.0.0.1");
  });
  const tcp: Server = createServer((socket) => {
    let buf = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 2 || buf.length < buf.readUInt16BE(0) + 2) return;
      const answer = answerTo(buf.subarray(2, buf.readUInt16BE(0) + 2), forged);
      const len = Buffer.alloc(2);
      len.writeUInt16BE(answer.length);
      socket.end(Buffer.concat([len, answer]));
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => tcp.listen(port, "127.0.0.1", () => resolve()));
  closers.push(() => tcp.close());
  return { server: `127.0.0.1:${port}`, updatesSeen: () => updates };
}

describe("forged unsigned answers cannot make a flip succeed", () => {
  it("sendUpdate: an unsigned NXRRSET after a resend is refused, not checked with an unsigned query", async () => {
    const mitm = await forgingProxy(SECONDARY);
    await expect(
      sendUpdate(
        { server: mitm.server, zone: bind.zone, key, timeoutMs: 900 },
        { name: "www.example.test", type: "A", ttl: 60, expected: [PRIMARY], next: [SECONDARY] },
      ),
    ).rejects.toMatchObject({ code: "DNS_RESPONSE_UNSIGNED" });
    expect(mitm.updatesSeen()).toBe(2);
    expect(await queryRecord(bind.server, "www.example.test", "A")).toEqual([PRIMARY]);
  });

  it("a query to the UPDATE's server signed with the key refuses an unsigned answer", async () => {
    const mitm = await forgingProxy(SECONDARY);
    // Make the proxy forge (it forges queries once it has seen an UPDATE).
    await sendUpdate(
      { server: mitm.server, zone: bind.zone, key, timeoutMs: 300 },
      { name: "www.example.test", type: "A", ttl: 60, expected: [PRIMARY] },
    ).catch(() => undefined);
    for (const forceTcp of [false, true]) {
      await expect(
        queryRecord(mitm.server, "www.example.test", "A", { key, forceTcp, timeoutMs: 900 }),
      ).rejects.toMatchObject({ code: "DNS_RESPONSE_UNSIGNED" });
    }
    // The same query to BIND itself verifies.
    expect(await queryRecord(bind.server, "www.example.test", "A", { key })).toEqual([PRIMARY]);
  });

  it("the dns-flip executor fails the flip, and BIND still holds the primary", async () => {
    const mitm = await forgingProxy(SECONDARY);
    const t: DnsFlipTarget = DnsFlipTargetSchema.parse({
      kind: "dns-flip",
      provider: {
        type: "rfc2136",
        server: mitm.server,
        zone: bind.zone,
        tsig: { name: bind.keyName, algorithm: "hmac-sha256", secretEnv: "TSIG_SECRET" },
      },
      record: { name: "flip.example.test", type: "A", ttl: 60 },
      values: { primary: [PRIMARY], secondary: [SECONDARY] },
      verify: { servers: [mitm.server], timeoutSeconds: 2 },
    });
    const action = ActionRequestSchema.parse(actionRequest("bootstrap-dns", 1, { issuedAt: new Date().toISOString() }));
    const executor = createDnsFlipExecutor({ env: { TSIG_SECRET: bind.secret } });
    const runs = await runSteps(executor, action, t, new MapMemory());
    const outcome = runs.map((r) => `${r.name}: ${r.error ? r.error.code : "succeeded"}`);
    expect(outcome).toEqual(["preflight: succeeded", "update: DNS_RESPONSE_UNSIGNED"]);
    expect(await queryRecord(bind.server, "flip.example.test", "A")).toEqual([PRIMARY]);
  });
});

describe("TSIG verification of a response", () => {
  const request = () =>
    signMessage(
      packet.encode({ type: "query", id: 7, flags: 0, questions: [{ name: "www.example.test", type: "A" }] }),
      key,
      Math.floor(Date.now() / 1000),
    );
  const response = (id: number) =>
    packet.encode({
      type: "response",
      id,
      flags: packet.AUTHORITATIVE_ANSWER,
      questions: [{ name: "www.example.test", type: "A" }],
      answers: [{ name: "www.example.test", type: "A", class: "IN", ttl: 60, data: PRIMARY }],
    });

  it("a response signed by the key verifies (the chained MAC as a server computes it)", () => {
    const req = request();
    const now = Math.floor(Date.now() / 1000);
    const signed = signMessage(response(7), key, now, 300, req.mac);
    expect(verifyResponse(signed.wire, req.mac, key, now)).toMatchObject({ ok: true });
  });

  it("checks the algorithm name: a MAC made under another algorithm's name is refused", () => {
    const req = request();
    const now = Math.floor(Date.now() / 1000);
    // Same secret and hash, but the TSIG names hmac-sha1: a receiver must not take it as sha256.
    const other = { ...key, algorithm: "hmac-sha1" } as unknown as TsigKey;
    const signed = signMessage(response(7), other, now, 300, req.mac);
    expect(verifyResponse(signed.wire, req.mac, key, now)).toMatchObject({ ok: false, reason: "wrong-algorithm" });
  });

  it("uses its own 300 s fudge, not the one the response claims", () => {
    const req = request();
    const now = Math.floor(Date.now() / 1000);
    const signed = signMessage(response(7), key, now - 3600, 65_535, req.mac);
    expect(verifyResponse(signed.wire, req.mac, key, now)).toMatchObject({ ok: false, reason: "bad-time" });
    const fresh = signMessage(response(7), key, now - 299, 0, req.mac);
    expect(verifyResponse(fresh.wire, req.mac, key, now)).toMatchObject({ ok: true });
  });
});
