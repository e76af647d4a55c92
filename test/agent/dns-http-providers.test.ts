/**
 * The Cloudflare and DigitalOcean DNS providers against faithful local fakes over real HTTP:
 * flip and flip back, pagination, compare-and-swap, 4xx error bodies surfaced, 429 + Retry-After,
 * a provider that stops answering (time bound, abort).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createProvider, type DnsRecordRef } from "../../agent/dns/provider.ts";
import type { StepContext } from "../../agent/executor.ts";
import {
  createDnsFlipExecutor,
  type FlipDnsOptions,
  flipDns,
  isInterruptedFlip,
} from "../../agent/executors/dns-flip.ts";
import { silentLogger } from "../../agent/log.ts";
import { type DnsFlipTarget, DnsFlipTargetSchema } from "../../shared/config.ts";
import { fakeClock } from "../support/fake-clock.ts";
import { type FakeCloudflare, startFakeCloudflare } from "../support/fake-cloudflare-dns.ts";
import { type FakeDigitalOcean, startFakeDigitalOcean } from "../support/fake-digitalocean-dns.ts";
import { freePort } from "../support/free-port.ts";

const ZONE_ID = "023e105f4ecef8ad9ca31a8372d0c353";
const CF_TOKEN = "cf-edit-token";
const DO_TOKEN = "do-edit-token";

let cf: FakeCloudflare;
let dO: FakeDigitalOcean;

beforeAll(async () => {
  [cf, dO] = await Promise.all([
    startFakeCloudflare({ zoneId: ZONE_ID, token: CF_TOKEN, readOnlyTokens: ["cf-read-token"], maxPerPage: 2 }),
    startFakeDigitalOcean({ domain: "example.com", token: DO_TOKEN, readOnlyTokens: ["do-read-token"], maxPerPage: 2 }),
  ]);
});

afterAll(async () => {
  await Promise.all([cf?.stop(), dO?.stop()]);
});

function cfTarget(name: string, primary: string[], secondary: string[], type = "A"): DnsFlipTarget {
  return DnsFlipTargetSchema.parse({
    kind: "dns-flip",
    provider: { type: "cloudflare", zoneId: ZONE_ID, tokenEnv: "CF_API_TOKEN", baseUrl: cf.baseUrl },
    record: { name, type, ttl: 60 },
    values: { primary, secondary },
  });
}

function doTarget(name: string, primary: string[], secondary: string[], type = "A"): DnsFlipTarget {
  return DnsFlipTargetSchema.parse({
    kind: "dns-flip",
    provider: { type: "digitalocean", domain: "example.com", tokenEnv: "DO_API_TOKEN", baseUrl: dO.baseUrl },
    record: { name, type, ttl: 60 },
    values: { primary, secondary },
  });
}

const env = { CF_API_TOKEN: CF_TOKEN, DO_API_TOKEN: DO_TOKEN };

/** flipDns with a fresh fake clock (or the one in `extra`, to read what it slept) and `env`. */
function flip(
  target: DnsFlipTarget,
  from: "primary" | "secondary",
  to: "primary" | "secondary",
  extra: Partial<FlipDnsOptions> = {},
) {
  const c = fakeClock();
  return flipDns(target, from, to, { dryRun: false, log: silentLogger, sleep: c.sleep, now: c.now, env, ...extra });
}

/** How many writes (anything but GET) a fake provider has received. */
const writes = (fake: { requests: { method: string }[] }) => fake.requests.filter((r) => r.method !== "GET").length;

let actionSeq = 1;
/** The dns-flip executor's steps for one failover of `target`, run one by one like the runner does. */
function executorSteps(target: DnsFlipTarget, signal = new AbortController().signal) {
  const action = {
    id: `edge-dns:${actionSeq++}`,
    target: "edge-dns",
    kind: "failover" as const,
    from: "primary" as const,
    to: "secondary" as const,
    dryRun: false,
    force: false,
    reason: "test",
    issuedAt: new Date().toISOString(),
  };
  const clock = fakeClock();
  const memory = new Map<string, unknown>();
  const ctx: StepContext<DnsFlipTarget> = {
    action,
    targetName: "edge-dns",
    target,
    log: silentLogger,
    memory: {
      get: async <T>(key: string) => memory.get(key) as T | undefined,
      set: async (key, value) => {
        memory.set(key, value);
      },
    },
    signal,
    now: clock.now,
    sleep: clock.sleep,
    progress: () => {},
  };
  const steps = createDnsFlipExecutor({ env }).steps(action, target);
  return {
    run(name: string) {
      const step = steps.find((s) => s.name === name);
      if (!step) throw new Error(`no step ${name}`);
      return step.run(ctx);
    },
  };
}

describe("Cloudflare provider", () => {
  it("flips a record set across several pages and back, touching no other record", async () => {
    // Five A records on the name (three pages at per_page 2) plus noise on other names and types.
    const primary = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"];
    for (const ip of primary) cf.addRecord("A", "www.example.com", ip);
    const other = cf.addRecord("A", "api.example.com", "10.0.0.1");
    cf.addRecord("AAAA", "www.example.com", "2001:db8::1");
    const target = cfTarget("www.example.com", primary, ["10.1.0.1", "10.1.0.2"]);

    const result = await flip(target, "primary", "secondary");
    expect(result.outcome).toBe("flipped");
    expect(cf.valuesOf("A", "www.example.com")).toEqual(["10.1.0.1", "10.1.0.2"]);
    expect(cf.valuesOf("AAAA", "www.example.com")).toEqual(["2001:db8::1"]);
    expect(cf.records.find((r) => r.id === other.id)?.content).toBe("10.0.0.1");
    expect(cf.requests.some((r) => r.method === "GET" && /page=3/.test(r.path))).toBe(true);
    expect(result.steps.find((s) => s.name === "update")?.detail).toMatch(/2 updated, 0 created, 3 deleted/);

    const back = await flip(target, "secondary", "primary");
    expect(back.outcome).toBe("flipped");
    expect(cf.valuesOf("A", "www.example.com")).toEqual(primary);
    expect((await flip(target, "secondary", "primary")).outcome).toBe("already-converged");
  });

  it("flips a CNAME", async () => {
    cf.addRecord("CNAME", "alias.example.com", "origin-a.example.com");
    const target = cfTarget("alias.example.com", ["origin-a.example.com."], ["origin-b.example.com"], "CNAME");
    expect((await flip(target, "primary", "secondary")).outcome).toBe("flipped");
    expect(cf.valuesOf("CNAME", "alias.example.com")).toEqual(["origin-b.example.com"]);
  });

  it("compare-and-swap: a value changed out of band fails with the mismatch and nothing is written", async () => {
    cf.addRecord("A", "race.example.com", "10.66.66.66");
    const writesBefore = writes(cf);
    const provider = createProvider(cfTarget("race.example.com", ["10.0.0.1"], ["10.0.0.2"]).provider, {
      env,
      sleep: async () => {},
    });
    const record: DnsRecordRef = { name: "race.example.com", type: "A", ttl: 60 };
    await expect(provider.replace(record, ["10.0.0.1"], ["10.0.0.2"], { dryRun: false })).rejects.toMatchObject({
      code: "DNS_VALUE_MISMATCH",
      message: expect.stringContaining("10.66.66.66"),
    });
    expect(writes(cf)).toBe(writesBefore);
    expect(cf.valuesOf("A", "race.example.com")).toEqual(["10.66.66.66"]);
  });

  it("dry run reads and compares only", async () => {
    cf.addRecord("A", "dry.example.com", "10.0.0.1");
    const writesBefore = writes(cf);
    const result = await flip(cfTarget("dry.example.com", ["10.0.0.1"], ["10.0.0.2"]), "primary", "secondary", {
      dryRun: true,
    });
    expect(result.outcome).toBe("dry-run");
    expect(writes(cf)).toBe(writesBefore);
    expect(cf.valuesOf("A", "dry.example.com")).toEqual(["10.0.0.1"]);
  });

  it("surfaces Cloudflare's error body: bad token 401, read-only token 403, unknown zone 404", async () => {
    cf.addRecord("A", "auth.example.com", "10.0.0.1");
    const target = cfTarget("auth.example.com", ["10.0.0.1"], ["10.0.0.2"]);
    await expect(flip(target, "primary", "secondary", { env: { CF_API_TOKEN: "wrong" } })).rejects.toMatchObject({
      code: "DNS_API_AUTH",
      message: expect.stringMatching(/HTTP 401: Authentication error \(code 10000\)/),
    });
    await expect(
      flip(target, "primary", "secondary", { env: { CF_API_TOKEN: "cf-read-token" } }),
    ).rejects.toMatchObject({
      code: "DNS_API_AUTH",
      message: expect.stringMatching(/HTTP 403: Unauthorized to access requested resource \(code 9109\)/),
    });
    const badZone = DnsFlipTargetSchema.parse({
      ...target,
      provider: { ...target.provider, zoneId: "0000" },
    });
    await expect(flip(badZone, "primary", "secondary")).rejects.toMatchObject({
      code: "DNS_API_NOT_FOUND",
      message: expect.stringContaining("perhaps your object identifier is invalid? (code 7003)"),
    });
    expect(cf.valuesOf("A", "auth.example.com")).toEqual(["10.0.0.1"]);
  });

  it("a 400 validation error names Cloudflare's message", async () => {
    cf.addRecord("A", "bad.example.com", "10.0.0.1");
    await expect(
      flip(cfTarget("bad.example.com", ["10.0.0.1"], ["not-an-ip"]), "primary", "secondary"),
    ).rejects.toMatchObject({
      code: "DNS_API_ERROR",
      message: expect.stringContaining("HTTP 400: Content for A record must be a valid IPv4 address. (code 9005)"),
    });
  });

  it("429 is retried after Retry-After, and gives up after the bounded attempts", async () => {
    cf.addRecord("A", "busy.example.com", "10.0.0.1");
    const c = fakeClock();
    cf.rateLimitNext(2, 7);
    const result = await flip(cfTarget("busy.example.com", ["10.0.0.1"], ["10.0.0.2"]), "primary", "secondary", c);
    expect(result.outcome).toBe("flipped");
    expect(c.slept.slice(0, 2)).toEqual([7000, 7000]);
    expect(cf.valuesOf("A", "busy.example.com")).toEqual(["10.0.0.2"]);

    const c2 = fakeClock();
    cf.rateLimitNext(10, 600);
    await expect(
      flip(cfTarget("busy.example.com", ["10.0.0.2"], ["10.0.0.3"]), "primary", "secondary", c2),
    ).rejects.toMatchObject({ code: "DNS_API_RATE_LIMITED" });
    // Bounded: 4 waits of at most 30 s each, not 600 s.
    expect(c2.slept).toEqual([30_000, 30_000, 30_000, 30_000]);
    cf.rateLimitNext(0, 0);
  });

  it('a connection failure names its cause (fetch\'s own message is only "fetch failed")', async () => {
    const closed = `http://127.0.0.1:${await freePort()}/client/v4`;
    const target = DnsFlipTargetSchema.parse({
      ...cfTarget("www.example.com", ["10.0.0.1"], ["10.0.0.2"]),
      provider: { type: "cloudflare", zoneId: ZONE_ID, tokenEnv: "CF_API_TOKEN", baseUrl: closed },
    });
    await expect(flip(target, "primary", "secondary")).rejects.toMatchObject({
      code: "DNS_NETWORK",
      message: expect.stringMatching(
        /^cloudflare GET \/zones\/\w+\/dns_records\?\S+: fetch failed: connect ECONNREFUSED/,
      ),
    });
  });

  it("a missing token env var is a clear config error", async () => {
    await expect(
      flip(cfTarget("www.example.com", ["10.0.0.1"], ["10.0.0.2"]), "primary", "secondary", { env: {} }),
    ).rejects.toMatchObject({ code: "DNS_CONFIG", message: expect.stringContaining("CF_API_TOKEN") });
  });
});

describe("DigitalOcean provider", () => {
  it("flips a record set across several pages and back (relative names, links.pages.next)", async () => {
    const primary = ["10.0.0.1", "10.0.0.2", "10.0.0.3"];
    for (const ip of primary) dO.addRecord("A", "www", ip);
    dO.addRecord("A", "api", "10.0.0.1");
    dO.addRecord("A", "@", "10.0.0.9");
    const target = doTarget("www.example.com", primary, ["10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4"]);
    const result = await flip(target, "primary", "secondary");
    expect(result.outcome).toBe("flipped");
    expect(dO.valuesOf("A", "www")).toEqual(["10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4"]);
    expect(dO.valuesOf("A", "api")).toEqual(["10.0.0.1"]);
    expect(dO.valuesOf("A", "@")).toEqual(["10.0.0.9"]);
    expect(dO.requests.some((r) => r.method === "GET" && /page=2/.test(r.path))).toBe(true);
    expect((await flip(target, "secondary", "primary")).outcome).toBe("flipped");
    expect(dO.valuesOf("A", "www")).toEqual(primary);
  });

  it("flips the apex and a CNAME (data sent as a FQDN with a trailing dot)", async () => {
    const apex = doTarget("example.com", ["10.0.0.9"], ["10.0.0.10"]);
    expect((await flip(apex, "primary", "secondary")).outcome).toBe("flipped");
    expect(dO.valuesOf("A", "@")).toEqual(["10.0.0.10"]);
    dO.addRecord("CNAME", "alias", "origin-a.example.com.");
    const alias = doTarget("alias.example.com", ["origin-a.example.com"], ["origin-b.example.com"], "CNAME");
    expect((await flip(alias, "primary", "secondary")).outcome).toBe("flipped");
    expect(dO.valuesOf("CNAME", "alias")).toEqual(["origin-b.example.com."]);
  });

  it("compare-and-swap: an out-of-band value fails the flip and nothing is written", async () => {
    dO.addRecord("A", "race", "10.66.66.66");
    const writesBefore = writes(dO);
    await expect(
      flip(doTarget("race.example.com", ["10.0.0.1"], ["10.0.0.2"]), "primary", "secondary"),
    ).rejects.toMatchObject({
      code: "DNS_VALUE_MISMATCH",
      message: expect.stringContaining("10.66.66.66"),
    });
    expect(writes(dO)).toBe(writesBefore);
  });

  it("surfaces DigitalOcean's {id, message} bodies: 401, 403, 404, 422", async () => {
    dO.addRecord("A", "auth", "10.0.0.1");
    const target = doTarget("auth.example.com", ["10.0.0.1"], ["10.0.0.2"]);
    await expect(flip(target, "primary", "secondary", { env: { DO_API_TOKEN: "nope" } })).rejects.toMatchObject({
      code: "DNS_API_AUTH",
      message: expect.stringContaining("HTTP 401: Unable to authenticate you. (Unauthorized)"),
    });
    await expect(
      flip(target, "primary", "secondary", { env: { DO_API_TOKEN: "do-read-token" } }),
    ).rejects.toMatchObject({
      code: "DNS_API_AUTH",
      message: expect.stringContaining("HTTP 403: You are not authorized to perform this operation (Forbidden)"),
    });
    const wrongDomain = DnsFlipTargetSchema.parse({
      ...doTarget("www.example.org", ["10.0.0.1"], ["10.0.0.2"]),
      provider: { type: "digitalocean", domain: "example.org", tokenEnv: "DO_API_TOKEN", baseUrl: dO.baseUrl },
    });
    await expect(flip(wrongDomain, "primary", "secondary")).rejects.toMatchObject({
      code: "DNS_API_NOT_FOUND",
      message: expect.stringContaining("The resource you were accessing could not be found. (not_found)"),
    });
    await expect(
      flip(doTarget("auth.example.com", ["10.0.0.1"], ["bogus"]), "primary", "secondary"),
    ).rejects.toMatchObject({
      code: "DNS_API_ERROR",
      message: expect.stringContaining("HTTP 422: Data needs to be a valid IPv4 address (unprocessable_entity)"),
    });
    expect(dO.valuesOf("A", "auth")).toEqual(["10.0.0.1"]);
  });

  it("429 is retried after Retry-After", async () => {
    dO.addRecord("A", "busy", "10.0.0.1");
    const c = fakeClock();
    dO.rateLimitNext(1, 3);
    const result = await flip(doTarget("busy.example.com", ["10.0.0.1"], ["10.0.0.2"]), "primary", "secondary", c);
    expect(result.outcome).toBe("flipped");
    expect(c.slept[0]).toBe(3000);
    expect(dO.requests.filter((r) => r.status === 429)).toHaveLength(1);
    expect(dO.valuesOf("A", "busy")).toEqual(["10.0.0.2"]);
  });

  it("a name outside the domain is refused before any request", async () => {
    await expect(
      flip(doTarget("www.other.net", ["10.0.0.1"], ["10.0.0.2"]), "primary", "secondary"),
    ).rejects.toMatchObject({
      code: "DNS_NOTZONE",
    });
  });
});

describe("a provider that stops answering", () => {
  it("a request with no answer fails after the time bound, naming provider, method and path", async () => {
    cf.addRecord("A", "hang.example.com", "10.0.0.1");
    const held = cf.stallNext(1);
    const started = Date.now();
    const result = flip(cfTarget("hang.example.com", ["10.0.0.1"], ["10.0.0.2"]), "primary", "secondary", {
      requestTimeoutMs: 200,
    });
    await held;
    await expect(result).rejects.toMatchObject({
      code: "DNS_TIMEOUT",
      message: expect.stringMatching(
        /^cloudflare GET \/zones\/\w+\/dns_records\?\S+: no complete answer within 200 ms$/,
      ),
    });
    expect(Date.now() - started).toBeLessThan(3000);
    expect(cf.valuesOf("A", "hang.example.com")).toEqual(["10.0.0.1"]);
  }, 5000);

  it("an answer whose body never ends fails after the time bound too", async () => {
    dO.addRecord("A", "hang", "10.0.0.1");
    const held = dO.stallNext(1, { afterHeaders: true });
    const result = flip(doTarget("hang.example.com", ["10.0.0.1"], ["10.0.0.2"]), "primary", "secondary", {
      requestTimeoutMs: 200,
    });
    await held;
    await expect(result).rejects.toMatchObject({
      code: "DNS_TIMEOUT",
      message: expect.stringMatching(/^digitalocean GET \/v2\/domains\/example\.com\/records\?\S+: no complete answer/),
    });
  }, 5000);

  it("the step's abort signal (shutdown, lost leadership) ends a hanging request at once", async () => {
    cf.addRecord("A", "abort.example.com", "10.0.0.1");
    const controller = new AbortController();
    const steps = executorSteps(cfTarget("abort.example.com", ["10.0.0.1"], ["10.0.0.2"]), controller.signal);
    const held = cf.stallNext(1);
    const run = steps.run("preflight");
    await held;
    controller.abort(new Error("lost leadership"));
    await expect(run).rejects.toThrow("lost leadership");
  }, 5000);
});

describe("a flip broken off between its separate writes", () => {
  it("Cloudflare: a retry finishes a half-replaced record set instead of failing with a mismatch", async () => {
    // 3 values → 2: PUT, PUT, DELETE. The second PUT fails, leaving one new value among two old.
    for (const ip of ["10.2.0.1", "10.2.0.2", "10.2.0.3"]) cf.addRecord("A", "half.example.com", ip);
    const target = cfTarget("half.example.com", ["10.2.0.1", "10.2.0.2", "10.2.0.3"], ["10.3.0.1", "10.3.0.2"]);
    cf.failNthWrite(2);
    await expect(flip(target, "primary", "secondary")).rejects.toMatchObject({
      code: "DNS_API_ERROR",
      message: expect.stringContaining("HTTP 500: Internal Server Error"),
    });
    const half = cf.valuesOf("A", "half.example.com");
    expect(half).toHaveLength(3);
    expect(half).toContain("10.3.0.1");

    const retry = await flip(target, "primary", "secondary");
    expect(retry.outcome).toBe("flipped");
    expect(retry.steps[0]?.detail).toMatch(/part way from primary to secondary: an interrupted flip/);
    expect(retry.steps[1]?.detail).toMatch(/^finishing an interrupted flip \(it held [^)]*10\.3\.0\.1/);
    expect(cf.valuesOf("A", "half.example.com")).toEqual(["10.3.0.1", "10.3.0.2"]);
  });

  it("DigitalOcean: the resumed update step finishes a record set that got only some new values", async () => {
    // 1 value → 3: PUT, POST, POST. The first POST fails: the record holds one of the new values.
    dO.addRecord("A", "grow", "10.2.0.1");
    const steps = executorSteps(doTarget("grow.example.com", ["10.2.0.1"], ["10.3.0.1", "10.3.0.2", "10.3.0.3"]));
    await steps.run("preflight");
    dO.failNthWrite(2);
    await expect(steps.run("update")).rejects.toMatchObject({ code: "DNS_API_ERROR" });
    expect(dO.valuesOf("A", "grow")).toEqual(["10.3.0.1"]);
    // The runner resumes a failed action at the step that failed.
    expect(await steps.run("update")).toMatchObject({
      status: "succeeded",
      detail: expect.stringContaining("finishing an interrupted flip (it held 10.3.0.1)"),
    });
    expect(dO.valuesOf("A", "grow")).toEqual(["10.3.0.1", "10.3.0.2", "10.3.0.3"]);
  });

  it("a half-flipped record that someone also changed is still a mismatch, and nothing is written", async () => {
    for (const ip of ["10.2.0.1", "10.2.0.2"]) cf.addRecord("A", "mixed.example.com", ip);
    const target = cfTarget("mixed.example.com", ["10.2.0.1", "10.2.0.2"], ["10.3.0.1", "10.3.0.2"]);
    cf.failNthWrite(2);
    await expect(flip(target, "primary", "secondary")).rejects.toMatchObject({ code: "DNS_API_ERROR" });
    cf.addRecord("A", "mixed.example.com", "10.66.66.66");
    const writesBefore = writes(cf);
    await expect(flip(target, "primary", "secondary")).rejects.toMatchObject({
      code: "DNS_VALUE_MISMATCH",
      message: expect.stringContaining("10.66.66.66"),
    });
    expect(writes(cf)).toBe(writesBefore);
    expect(cf.valuesOf("A", "mixed.example.com")).toEqual(["10.2.0.2", "10.3.0.1", "10.66.66.66"]);
  });

  it("tells an interrupted flip from an out-of-band change", () => {
    const from = ["10.0.0.1", "10.0.0.2", "10.0.0.9"];
    const to = ["10.1.0.1", "10.1.0.2", "10.0.0.9"];
    const interrupted = (current: string[], a = from, b = to) => isInterruptedFlip("A", current, a, b);
    expect(interrupted(["10.1.0.1", "10.0.0.2", "10.0.0.9"])).toBe(true); // one rewritten
    expect(interrupted(["10.1.0.1", "10.0.0.9"])).toBe(true); // only new values so far
    expect(interrupted(["10.0.0.2", "10.0.0.9"])).toBe(false); // an old value removed, no new one
    expect(interrupted(["10.1.0.1", "10.0.0.2"])).toBe(false); // the shared value is gone
    expect(interrupted(["10.1.0.1", "10.0.0.2", "10.0.0.9", "10.5.5.5"])).toBe(false); // a stranger
    expect(interrupted([])).toBe(false);
    // A flip that only drops values (deletes only) passes through subsets of `from`.
    expect(interrupted(["10.0.0.1", "10.0.0.2"], ["10.0.0.1", "10.0.0.2", "10.0.0.3"], ["10.0.0.1"])).toBe(true);
    // Values compare canonically.
    const v6 = (current: string[]) =>
      isInterruptedFlip("AAAA", current, ["2001:db8::1", "2001:db8::2"], ["2001:db8::3", "2001:db8::4"]);
    expect(v6(["2001:DB8:0::3", "2001:db8:0:0:0:0:0:2"])).toBe(true);
  });
});
