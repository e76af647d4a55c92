/**
 * TSIG signing and response verification, and the RFC 2136 transport (UDP, resends of lost
 * datagrams, TC → TCP, large → TCP, timeouts), against a known vector captured from BIND's
 * nsupdate and a real BIND.
 */
import { createSocket, type Socket } from "node:dgram";
import { connect, createServer, type Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DnsError } from "../../agent/dns/errors.ts";
import { encodeUpdate, exchange, queryRecord, type Rfc2136Server, sendUpdate } from "../../agent/dns/rfc2136.ts";
import { findTsig, parseTsigSecret, signMessage, type TsigKey, verifyResponse } from "../../agent/dns/tsig.ts";
import { type BindServer, startBind } from "../support/bind.ts";
import { freePort } from "../support/free-port.ts";

/**
 * Captured from `nsupdate -y hmac-sha256:turnout-key:<secret>` (BIND 9.18.49) sending
 * `prereq yxrrset www.example.test. A 172.30.41.193; update delete www.example.test. A;
 * update add www.example.test. 60 A 172.30.41.194` to a UDP listener.
 */
const VECTOR = {
  secret: "dHVybm91dC10c2lnLXRlc3QtdmVjdG9yLXNlY3JldCE=",
  message:
    "1adc28000001000100020001076578616d706c650474657374000006000103777777c00c00010001000000000004ac1e29c1c01e000100ff000000000000c01e000100010000003c0004ac1e29c20b7475726e6f75742d6b65790000fa00ff00000000003d0b686d61632d7368613235360000006b026d42012c002066e63606f670a275bf731e66f9a235cec995319293b5587efc50efed0addd9551adc00000000",
  timeSigned: 1795321154,
  mac: "66e63606f670a275bf731e66f9a235cec995319293b5587efc50efed0addd955",
};

describe("TSIG hmac-sha256 signing", () => {
  const key: TsigKey = { name: "turnout-key", algorithm: "hmac-sha256", secret: parseTsigSecret(VECTOR.secret) };
  const captured = Buffer.from(VECTOR.message, "hex");
  const found = findTsig(captured);
  /** The captured message as it was before nsupdate signed it: TSIG cut off, ARCOUNT back by one. */
  const unsignedVector = () => {
    const unsigned = Buffer.from(captured.subarray(0, found?.offset));
    unsigned.writeUInt16BE(unsigned.readUInt16BE(10) - 1, 10);
    return unsigned;
  };

  it("reproduces nsupdate's signed message byte for byte", () => {
    expect(found?.record).toMatchObject({ keyName: "turnout-key", algorithm: "hmac-sha256", fudge: 300, error: 0 });
    expect(found?.record.timeSigned).toBe(VECTOR.timeSigned);
    const unsigned = unsignedVector();
    const signed = signMessage(unsigned, key, VECTOR.timeSigned);
    expect(signed.mac.toString("hex")).toBe(VECTOR.mac);
    expect(signed.wire.toString("hex")).toBe(VECTOR.message);
  });

  it("a different secret or time gives a different MAC", () => {
    const unsigned = unsignedVector();
    const other = { ...key, secret: Buffer.from("another secret") };
    expect(signMessage(unsigned, other, VECTOR.timeSigned).mac.toString("hex")).not.toBe(VECTOR.mac);
    expect(signMessage(unsigned, key, VECTOR.timeSigned + 1).mac.toString("hex")).not.toBe(VECTOR.mac);
  });

  it("rejects a secret that is not base64", () => {
    expect(() => parseTsigSecret("not base64!")).toThrow(/not base64/);
  });
});

let bind: BindServer;
let key: TsigKey;
let target: Rfc2136Server;

beforeAll(async () => {
  bind = await startBind({
    records: ["www IN A 10.0.0.1", "big IN A 10.0.0.1", "lost-ask IN A 10.0.0.1", "lost-answer IN A 10.0.0.1"],
  });
  key = { name: bind.keyName, algorithm: "hmac-sha256", secret: parseTsigSecret(bind.secret) };
  target = { server: bind.server, zone: bind.zone, key, timeoutMs: 2000 };
});

const proxies: { close(): void }[] = [];
afterAll(async () => {
  for (const p of proxies) p.close();
  await bind?.stop();
});

/**
 * A UDP (and TCP) man in the middle in front of BIND that can rewrite UDP responses and lose the
 * first `dropRequests` datagrams on the way in or the first `dropAnswers` on the way back.
 * TCP is forwarded unchanged, so a TC fallback reaches the real server.
 */
async function proxy(
  rewrite: (response: Buffer) => Buffer,
  lose: { dropRequests?: number; dropAnswers?: number } = {},
): Promise<{ server: string; udpSeen: () => number }> {
  let dropRequests = lose.dropRequests ?? 0;
  let dropAnswers = lose.dropAnswers ?? 0;
  const port = await freePort();
  const udp: Socket = createSocket("udp4");
  await new Promise<void>((resolve, reject) => {
    udp.once("error", reject);
    udp.bind(port, "127.0.0.1", () => resolve());
  });
  let seen = 0;
  udp.on("message", (msg, rinfo) => {
    seen++;
    if (dropRequests > 0) {
      dropRequests--;
      return;
    }
    const upstream = createSocket("udp4");
    upstream.on("message", (res) => {
      upstream.close();
      if (dropAnswers > 0) {
        dropAnswers--;
        return;
      }
      udp.send(rewrite(res), rinfo.port, rinfo.address);
    });
    upstream.send(msg, bind.port, "127.0.0.1");
  });
  const tcp: Server = createServer((client) => {
    const up = connect({ host: "127.0.0.1", port: bind.port });
    client.pipe(up).pipe(client);
    client.on("error", () => up.destroy());
    up.on("error", () => client.destroy());
  });
  proxies.push({
    close() {
      udp.close();
      tcp.close();
    },
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen(port, "127.0.0.1", () => resolve());
  });
  return { server: `127.0.0.1:${port}`, udpSeen: () => seen };
}

/** A prerequisite-only UPDATE (www holds 10.0.0.1) sent to `server`; resolves with what it threw. */
function dryRunUpdateError(server: string, timeoutMs = target.timeoutMs): Promise<unknown> {
  const check = { name: "www.example.test", type: "A" as const, ttl: 60, expected: ["10.0.0.1"] };
  return sendUpdate({ ...target, server, timeoutMs }, check).catch((e: unknown) => e);
}

describe("response MAC verification against BIND", () => {
  it("BIND's signed response verifies; any tampered byte or a different request MAC does not", async () => {
    const unsigned = encodeUpdate(bind.zone, { name: "www.example.test", type: "A", ttl: 60, expected: ["10.0.0.1"] });
    const now = Math.floor(Date.now() / 1000);
    const signed = signMessage(unsigned, key, now);
    const { response } = await exchange(bind.server, signed.wire, 2000);
    expect(verifyResponse(response, signed.mac, key, now)).toMatchObject({ ok: true });

    const tampered = Buffer.from(response);
    tampered[3] = (tampered[3] ?? 0) ^ 0x01; // flip a header bit (rcode)
    expect(verifyResponse(tampered, signed.mac, key, now)).toMatchObject({ ok: false, reason: "bad-mac" });

    const wrongRequest = Buffer.from(signed.mac);
    wrongRequest[0] = (wrongRequest[0] ?? 0) ^ 0xff;
    expect(verifyResponse(response, wrongRequest, key, now)).toMatchObject({ ok: false, reason: "bad-mac" });

    expect(verifyResponse(response, signed.mac, { ...key, secret: Buffer.from("x") }, now)).toMatchObject({
      ok: false,
      reason: "bad-mac",
    });
    expect(verifyResponse(response, signed.mac, key, now + 3600)).toMatchObject({ ok: false, reason: "bad-time" });
  });

  it("sendUpdate refuses a response whose MAC was tampered with in transit", async () => {
    // BIND's NOERROR answer with the last MAC byte flipped (RDATA ends: MAC, id, error, other-len).
    const mitm = await proxy((res) => {
      const copy = Buffer.from(res);
      const found = findTsig(copy);
      if (found?.record.other.length === 0) copy[copy.length - 7] = (copy[copy.length - 7] ?? 0) ^ 0xff;
      return copy;
    });
    const err = await dryRunUpdateError(mitm.server);
    expect(err).toBeInstanceOf(DnsError);
    expect(err).toMatchObject({ code: "DNS_RESPONSE_BADSIG" });
  });

  it("sendUpdate refuses an unsigned NOERROR answer to a signed request", async () => {
    const mitm = await proxy((res) => {
      const found = findTsig(res);
      if (!found) return res;
      const stripped = Buffer.from(res.subarray(0, found.offset));
      stripped.writeUInt16BE(stripped.readUInt16BE(10) - 1, 10);
      return stripped;
    });
    const err = await dryRunUpdateError(mitm.server);
    expect(err).toMatchObject({ code: "DNS_RESPONSE_UNSIGNED" });
  });
});

describe("server-side failures map to stable codes", () => {
  const upd = { name: "www.example.test", type: "A" as const, ttl: 60, expected: ["10.255.0.1"], next: ["10.255.0.2"] };

  it("a clock an hour off is BADTIME", async () => {
    await expect(sendUpdate({ ...target, now: () => Date.now() - 3_600_000 }, upd)).rejects.toMatchObject({
      code: "DNS_BADTIME",
      message: expect.stringContaining("NOTAUTH(BADTIME)"),
    });
  });

  it("a zone the server does not serve is NOTAUTH; a name outside the zone is NOTZONE", async () => {
    await expect(
      sendUpdate({ ...target, zone: "other.test" }, { ...upd, name: "www.other.test" }),
    ).rejects.toMatchObject({
      code: "DNS_NOTAUTH",
    });
    await expect(sendUpdate(target, { ...upd, name: "www.elsewhere.test" })).rejects.toMatchObject({
      code: "DNS_NOTZONE",
    });
  });
});

describe("RFC 2136 transport", () => {
  it("retries over TCP when the UDP answer is truncated (TC bit)", async () => {
    const mitm = await proxy((res) => {
      // Header only, TC set: what a server sends when the answer does not fit.
      const header = Buffer.from(res.subarray(0, 12));
      header.writeUInt16BE(header.readUInt16BE(2) | 0x0200, 2);
      header.writeUInt16BE(0, 4);
      header.writeUInt16BE(0, 6);
      header.writeUInt16BE(0, 8);
      header.writeUInt16BE(0, 10);
      return header;
    });
    const result = await sendUpdate(
      { ...target, server: mitm.server },
      {
        name: "www.example.test",
        type: "A",
        ttl: 60,
        expected: ["10.0.0.1"],
        next: ["10.0.0.2"],
      },
    );
    expect(result.transport).toBe("tcp");
    expect(mitm.udpSeen()).toBe(1);
    expect(await queryRecord(bind.server, "www.example.test", "A")).toEqual(["10.0.0.2"]);
    const values = await queryRecord(mitm.server, "www.example.test", "A");
    expect(values).toEqual(["10.0.0.2"]);
  });

  it("sends a message over 512 bytes over TCP directly", async () => {
    const many = Array.from({ length: 40 }, (_, i) => `10.9.0.${i + 1}`);
    const unsignedSize = encodeUpdate(bind.zone, {
      name: "big.example.test",
      type: "A",
      ttl: 60,
      expected: ["10.0.0.1"],
      next: many,
    }).length;
    expect(unsignedSize).toBeGreaterThan(512);
    const result = await sendUpdate(target, {
      name: "big.example.test",
      type: "A",
      ttl: 60,
      expected: ["10.0.0.1"],
      next: many,
    });
    expect(result.transport).toBe("tcp");
    expect(await queryRecord(bind.server, "big.example.test", "A", { forceTcp: true })).toHaveLength(40);
  });

  it("a lost UPDATE datagram is sent again, so the update and the query still succeed", async () => {
    const lossy = await proxy((res) => res, { dropRequests: 1 });
    const result = await sendUpdate(
      { ...target, server: lossy.server, timeoutMs: 900 },
      { name: "lost-ask.example.test", type: "A", ttl: 60, expected: ["10.0.0.1"], next: ["10.0.0.2"] },
    );
    expect(result.transport).toBe("udp");
    expect(lossy.udpSeen()).toBe(2);
    const lossyQuery = await proxy((res) => res, { dropRequests: 1 });
    expect(await queryRecord(lossyQuery.server, "lost-ask.example.test", "A", { timeoutMs: 900 })).toEqual([
      "10.0.0.2",
    ]);
    expect(lossyQuery.udpSeen()).toBe(2);
  });

  it("a lost answer: the resent UPDATE fails its prerequisite, and the record holding our values is success", async () => {
    const lossy = await proxy((res) => res, { dropAnswers: 1 });
    const result = await sendUpdate(
      { ...target, server: lossy.server, timeoutMs: 900 },
      { name: "lost-answer.example.test", type: "A", ttl: 60, expected: ["10.0.0.1"], next: ["10.0.0.2"] },
    );
    expect(result).toMatchObject({ rcode: "NOERROR", transport: "udp" });
    expect(lossy.udpSeen()).toBe(2);
    expect(await queryRecord(bind.server, "lost-answer.example.test", "A")).toEqual(["10.0.0.2"]);
    // A lost answer to a prerequisite-only UPDATE (dry run) that fails is not mistaken for success.
    const dry = await proxy((res) => res, { dropAnswers: 1 });
    await expect(
      sendUpdate(
        { ...target, server: dry.server, timeoutMs: 900 },
        { name: "lost-answer.example.test", type: "A", ttl: 60, expected: ["10.0.0.1"] },
      ),
    ).rejects.toMatchObject({ code: "DNS_NXRRSET" });
  });

  it("times out clearly when the server never answers, after sending the same message three times", async () => {
    const silent = createSocket("udp4");
    const received: Buffer[] = [];
    silent.on("message", (msg) => received.push(msg));
    await new Promise<void>((r) => silent.bind(0, "127.0.0.1", () => r()));
    proxies.push({ close: () => silent.close() });
    const server = `127.0.0.1:${silent.address().port}`;
    const started = Date.now();
    const err = await queryRecord(server, "www.example.test", "A", { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "DNS_TIMEOUT" });
    expect((err as Error).message).toContain(server);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(received).toHaveLength(3);
    expect(received.every((m) => m.equals(received[0] as Buffer))).toBe(true);
    expect(await dryRunUpdateError(server, 300)).toMatchObject({ code: "DNS_TIMEOUT" });
  });

  it("a query for a missing name is an empty set, and a bad server address is a config error", async () => {
    expect(await queryRecord(bind.server, "nope.example.test", "A")).toEqual([]);
    await expect(queryRecord("no-port", "www.example.test", "A")).rejects.toMatchObject({ code: "DNS_CONFIG" });
  });
});
