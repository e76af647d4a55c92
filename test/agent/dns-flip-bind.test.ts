/**
 * The dns-flip executor against a real BIND 9 with a TSIG-protected zone (runbook B).
 */
import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queryRecord } from "../../agent/dns/rfc2136.ts";
import type { DurableMemory, StepContext } from "../../agent/executor.ts";
import { StepError } from "../../agent/executor.ts";
import { configMapReader, createDnsFlipExecutor, type DnsFlipDeps, flipDns } from "../../agent/executors/dns-flip.ts";
import { silentLogger } from "../../agent/log.ts";
import { startFakeKubeApi } from "../../agent/sandbox/fake-kube-api.ts";
import { type DnsFlipTarget, DnsFlipTargetSchema, type Side } from "../../shared/config.ts";
import type { ActionRequest } from "../../shared/protocol.ts";
import { type BindServer, startBind } from "../support/bind.ts";
import { fakeClock } from "../support/fake-clock.ts";

const PRIMARY = "172.30.41.193";
const SECONDARY = "172.30.41.194";

let bind: BindServer;
/** A second BIND with the same zone that never receives the update: a server that never converges. */
let stale: BindServer;

beforeAll(async () => {
  const records = [
    `www IN A ${PRIMARY}`,
    "v6 IN AAAA 2001:db8::1",
    "alias IN CNAME origin-a.example.test.",
    `race IN A ${PRIMARY}`,
    `dry IN A ${PRIMARY}`,
    `slow IN A ${PRIMARY}`,
    `auth IN A ${PRIMARY}`,
  ];
  [bind, stale] = await Promise.all([startBind({ records }), startBind({ records })]);
});

afterAll(async () => {
  await Promise.all([bind?.stop(), stale?.stop()]);
});

function target(overrides: Record<string, unknown> = {}, secretEnv = "TSIG_SECRET"): DnsFlipTarget {
  return DnsFlipTargetSchema.parse({
    kind: "dns-flip",
    provider: {
      type: "rfc2136",
      server: bind.server,
      zone: "example.test",
      tsig: { name: bind.keyName, algorithm: "hmac-sha256", secretEnv },
    },
    record: { name: "www.example.test", type: "A", ttl: 60 },
    values: { primary: [PRIMARY], secondary: [SECONDARY] },
    verify: { servers: [bind.server], timeoutSeconds: 5 },
    ...overrides,
  });
}

function memory(): DurableMemory {
  const m = new Map<string, unknown>();
  return {
    get: async <T>(k: string) => m.get(k) as T | undefined,
    set: async (k, v) => {
      m.set(k, v);
    },
  };
}

interface StepRun {
  name: string;
  status: "succeeded" | "skipped" | "failed";
  detail: string;
  code?: string;
}

let seq = 1;
/** A fresh action flipping `from` → `to`. */
function actionOf(from: Side, to: Side, dryRun = false): ActionRequest {
  return {
    id: `bootstrap-dns:${seq++}`,
    target: "bootstrap-dns",
    kind: from === "primary" ? "failover" : "failback",
    from,
    to,
    dryRun,
    force: false,
    reason: "test",
    issuedAt: new Date().toISOString(),
  };
}

/** The context the runner gives each step of one action: one memory and one fake clock throughout. */
function stepContext(action: ActionRequest, t: DnsFlipTarget): StepContext<DnsFlipTarget> {
  const clock = fakeClock();
  return {
    action,
    targetName: "bootstrap-dns",
    target: t,
    log: silentLogger,
    memory: memory(),
    signal: new AbortController().signal,
    now: clock.now,
    sleep: clock.sleep,
    progress: () => {},
  };
}

/** Runs an executor's steps in order like the runner does, stopping at the first failure. */
async function runAction(
  t: DnsFlipTarget,
  from: Side,
  to: Side,
  opts: { dryRun?: boolean; deps?: DnsFlipDeps } = {},
): Promise<StepRun[]> {
  const executor = createDnsFlipExecutor({ env: { TSIG_SECRET: bind.secret }, ...opts.deps });
  const action = actionOf(from, to, opts.dryRun);
  const ctx = stepContext(action, t);
  const out: StepRun[] = [];
  for (const step of executor.steps(action, t)) {
    try {
      const r = await step.run(ctx);
      out.push({ name: step.name, status: r?.status ?? "succeeded", detail: r?.detail ?? "" });
    } catch (err) {
      if (!(err instanceof StepError)) throw err;
      out.push({ name: step.name, status: "failed", detail: err.message, code: err.code });
      break;
    }
  }
  return out;
}

const a = (name: string, type: "A" | "AAAA" | "CNAME" = "A") => queryRecord(bind.server, name, type);

describe("dns-flip over RFC 2136 + TSIG against BIND", () => {
  it("flips to the secondary, verifies, reports the TTL, and flips back", async () => {
    const t = target();
    const failover = await runAction(t, "primary", "secondary");
    expect(failover.map((s) => [s.name, s.status])).toEqual([
      ["preflight", "succeeded"],
      ["update", "succeeded"],
      ["verify", "succeeded"],
    ]);
    expect(await a("www.example.test")).toEqual([SECONDARY]);
    expect(failover[2]?.detail).toContain("resolvers may serve the old value for up to 60 s");

    const failback = await runAction(t, "secondary", "primary");
    expect(failback.every((s) => s.status === "succeeded")).toBe(true);
    expect(await a("www.example.test")).toEqual([PRIMARY]);
  });

  it("re-running a completed flip is a no-op success and sends no update", async () => {
    const t = target();
    await runAction(t, "primary", "secondary");
    const serial = await soaSerial();
    const again = await runAction(t, "primary", "secondary");
    expect(again.map((s) => [s.name, s.status])).toEqual([
      ["preflight", "succeeded"],
      ["update", "skipped"],
      ["verify", "skipped"],
    ]);
    expect(again[0]?.detail).toContain("already converged");
    expect(await soaSerial()).toBe(serial);
    await runAction(t, "secondary", "primary");
  });

  it("an out-of-band change before the flip fails preflight naming what was found, record untouched", async () => {
    const t = target({ record: { name: "race.example.test", type: "A", ttl: 60 } });
    const r = bind.nsupdate(["update delete race.example.test. A", "update add race.example.test. 60 A 10.66.66.66"]);
    expect(r.status, r.output).toBe(0);
    const run = await runAction(t, "primary", "secondary");
    expect(run).toHaveLength(1);
    expect(run[0]).toMatchObject({ name: "preflight", status: "failed", code: "DNS_VALUE_MISMATCH" });
    expect(run[0]?.detail).toContain("10.66.66.66");
    expect(await a("race.example.test")).toEqual(["10.66.66.66"]);
  });

  it("a change between preflight and update is refused by the prerequisite (NXRRSET), record untouched", async () => {
    const t = target({ record: { name: "race.example.test", type: "A", ttl: 60 } });
    bind.nsupdate(["update delete race.example.test. A", `update add race.example.test. 60 A ${PRIMARY}`]);
    const executor = createDnsFlipExecutor({ env: { TSIG_SECRET: bind.secret } });
    // Run preflight, then change the record out of band, then run update.
    const interleaved = await runInterleaved(executor, t, () =>
      bind.nsupdate(["update delete race.example.test. A", "update add race.example.test. 60 A 10.77.77.77"]),
    );
    expect(interleaved).toMatchObject({ code: "DNS_NXRRSET" });
    expect(interleaved.message).toContain("no longer holds the expected");
    expect(interleaved.message).toContain("10.77.77.77");
    expect(await a("race.example.test")).toEqual(["10.77.77.77"]);
  });

  it("a wrong secret fails with BADSIG and changes nothing", async () => {
    const t = target({ record: { name: "auth.example.test", type: "A", ttl: 60 } });
    const run = await runAction(t, "primary", "secondary", {
      deps: { env: { TSIG_SECRET: Buffer.alloc(32, 7).toString("base64") } },
    });
    // Preflight reads the record with a query signed by the key (design §7: queries to the UPDATE's
    // server are TSIG-signed), so a wrong key fails there, before any UPDATE is sent.
    expect(run.at(-1)).toMatchObject({ name: "preflight", status: "failed", code: "DNS_BADSIG" });
    expect(run.at(-1)?.detail).toContain("NOTAUTH(BADSIG)");
    expect(await a("auth.example.test")).toEqual([PRIMARY]);
  });

  it("an unknown key name fails with BADKEY", async () => {
    const t = DnsFlipTargetSchema.parse({
      ...target({ record: { name: "auth.example.test", type: "A", ttl: 60 } }),
      provider: {
        type: "rfc2136",
        server: bind.server,
        zone: "example.test",
        tsig: { name: "nobody-key", secretEnv: "TSIG_SECRET" },
      },
    });
    const run = await runAction(t, "primary", "secondary");
    expect(run.at(-1)).toMatchObject({ name: "preflight", status: "failed", code: "DNS_BADKEY" });
    expect(await a("auth.example.test")).toEqual([PRIMARY]);
  });

  it("a missing secret env var is a clear config error", async () => {
    const run = await runAction(target({}, "NOT_SET_ANYWHERE"), "primary", "secondary");
    expect(run[0]).toMatchObject({ status: "failed", code: "DNS_CONFIG" });
    expect(run[0]?.detail).toContain("NOT_SET_ANYWHERE");
  });

  it("dry run sends a prerequisite-only UPDATE and changes nothing", async () => {
    const t = target({ record: { name: "dry.example.test", type: "A", ttl: 60 } });
    const serial = await soaSerial();
    const run = await runAction(t, "primary", "secondary", { dryRun: true });
    expect(run.map((s) => [s.name, s.status])).toEqual([
      ["preflight", "succeeded"],
      ["update", "succeeded"],
      ["verify", "skipped"],
    ]);
    expect(run[1]?.detail).toMatch(/dry run: prerequisite-only UPDATE accepted/);
    expect(await a("dry.example.test")).toEqual([PRIMARY]);
    expect(await soaSerial()).toBe(serial);
  });

  it("dry run still proves the key: a wrong secret fails with BADSIG", async () => {
    const t = target({ record: { name: "dry.example.test", type: "A", ttl: 60 } });
    const run = await runAction(t, "primary", "secondary", {
      dryRun: true,
      deps: { env: { TSIG_SECRET: Buffer.alloc(32, 9).toString("base64") } },
    });
    expect(run.at(-1)).toMatchObject({ name: "preflight", code: "DNS_BADSIG" });
  });

  it("flips an AAAA record (values compared in canonical IPv6 form)", async () => {
    const t = target({
      record: { name: "v6.example.test", type: "AAAA", ttl: 120 },
      values: { primary: ["2001:db8:0:0::1"], secondary: ["2001:DB8::2"] },
    });
    const run = await runAction(t, "primary", "secondary");
    expect(run.every((s) => s.status === "succeeded")).toBe(true);
    expect(await a("v6.example.test", "AAAA")).toEqual(["2001:db8::2"]);
    expect(run.at(-1)?.detail).toContain("up to 120 s");
    await runAction(t, "secondary", "primary");
    expect(await a("v6.example.test", "AAAA")).toEqual(["2001:db8::1"]);
  });

  it("flips a CNAME record", async () => {
    const t = target({
      record: { name: "alias.example.test", type: "CNAME", ttl: 60 },
      values: { primary: ["origin-a.example.test."], secondary: ["origin-b.example.test"] },
    });
    const run = await runAction(t, "primary", "secondary");
    expect(run.every((s) => s.status === "succeeded")).toBe(true);
    expect(await a("alias.example.test", "CNAME")).toEqual(["origin-b.example.test"]);
    await runAction(t, "secondary", "primary");
    expect(await a("alias.example.test", "CNAME")).toEqual(["origin-a.example.test"]);
  });

  it("flips a multi-value record set atomically", async () => {
    const t = target({
      record: { name: "www.example.test", type: "A", ttl: 60 },
      values: { primary: [PRIMARY], secondary: ["10.1.0.1", "10.1.0.2", "10.1.0.3"] },
    });
    await runAction(t, "primary", "secondary");
    expect(await a("www.example.test")).toEqual(["10.1.0.1", "10.1.0.2", "10.1.0.3"]);
    const back = await runAction(t, "secondary", "primary");
    expect(back.every((s) => s.status === "succeeded")).toBe(true);
    expect(await a("www.example.test")).toEqual([PRIMARY]);
  });

  it("verify times out clearly when a listed server never converges", async () => {
    const t = target({
      record: { name: "slow.example.test", type: "A", ttl: 60 },
      verify: { servers: [bind.server, stale.server], timeoutSeconds: 3 },
    });
    const run = await runAction(t, "primary", "secondary");
    const last = run.at(-1);
    expect(last).toMatchObject({ name: "verify", status: "failed", code: "DNS_VERIFY_TIMEOUT" });
    expect(last?.detail).toContain(stale.server);
    expect(last?.detail).toContain(`answers ${PRIMARY}`);
    expect(last?.detail).not.toContain(`${bind.server} answers`);
    expect(await a("slow.example.test")).toEqual([SECONDARY]);
  });

  it("warns when the CoreDNS ConfigMap pins the name, and not otherwise (read with the given kubeconfig)", async () => {
    const corefile = `.:53 {\n    errors\n    hosts {\n       ${PRIMARY} www.example.test\n       fallthrough\n    }\n    forward . /etc/resolv.conf\n}\n`;
    const kube = await startFakeKubeApi();
    try {
      const kc = kube.kubeConfig();
      const core = kc.makeApiClient(CoreV1Api);
      const t = target({ coredns: { namespace: "kube-system", configMap: "coredns" } });
      const check = async () => {
        const run = await runAction(t, "primary", "secondary", {
          dryRun: true,
          deps: { readConfigMap: configMapReader(kc) },
        });
        return run.find((s) => s.name === "coredns-check");
      };
      const configMap = (Corefile: string) => ({ metadata: { name: "coredns" }, data: { Corefile } });

      await core.createNamespacedConfigMap({ namespace: "kube-system", body: configMap(corefile) });
      const pinned = await check();
      expect(pinned?.status).toBe("succeeded");
      expect(pinned?.detail).toMatch(/^warning: ConfigMap kube-system\/coredns pins www\.example\.test/);

      await core.replaceNamespacedConfigMap({
        namespace: "kube-system",
        name: "coredns",
        body: configMap(".:53 {\n    forward . /etc/resolv.conf\n}\n"),
      });
      expect((await check())?.detail).toBe("ConfigMap kube-system/coredns does not pin www.example.test");

      await core.deleteNamespacedConfigMap({ namespace: "kube-system", name: "coredns" });
      expect((await check())?.detail).toBe("warning: ConfigMap kube-system/coredns not found; pins not checked");
    } finally {
      await kube.close();
    }
  });

  it("flipDns runs the whole flip as one call (used by etcd-sync-teardown)", async () => {
    const clock = fakeClock();
    const options = {
      dryRun: false,
      log: silentLogger,
      sleep: clock.sleep,
      now: clock.now,
      env: { TSIG_SECRET: bind.secret },
    };
    const result = await flipDns(target(), "primary", "secondary", options);
    expect(result.outcome).toBe("flipped");
    expect(result.detail).toContain("resolvers may serve the old value for up to 60 s");
    expect((await flipDns(target(), "primary", "secondary", options)).outcome).toBe("already-converged");
    expect((await flipDns(target(), "secondary", "primary", { ...options, dryRun: true })).outcome).toBe("dry-run");
    expect((await flipDns(target(), "secondary", "primary", options)).outcome).toBe("flipped");
    expect(await a("www.example.test")).toEqual([PRIMARY]);
  });
});

async function soaSerial(): Promise<number> {
  const { exchange } = await import("../../agent/dns/rfc2136.ts");
  const packet = await import("dns-packet");
  const { response } = await exchange(
    bind.server,
    packet.encode({ type: "query", id: 7, questions: [{ name: "example.test", type: "SOA" }] }),
    2000,
  );
  const soa = packet.decode(response).answers?.find((x) => x.type === "SOA");
  if (soa?.type !== "SOA") throw new Error("no SOA");
  return soa.data.serial ?? -1;
}

async function runInterleaved(
  executor: ReturnType<typeof createDnsFlipExecutor>,
  t: DnsFlipTarget,
  between: () => unknown,
): Promise<StepError> {
  const action = actionOf("primary", "secondary");
  const ctx = stepContext(action, t);
  const steps = executor.steps(action, t);
  const preflight = steps.find((s) => s.name === "preflight");
  const update = steps.find((s) => s.name === "update");
  if (!preflight || !update) throw new Error("missing steps");
  await preflight.run(ctx);
  between();
  try {
    await update.run(ctx);
  } catch (err) {
    if (err instanceof StepError) return err;
    throw err;
  }
  throw new Error("update unexpectedly succeeded");
}
