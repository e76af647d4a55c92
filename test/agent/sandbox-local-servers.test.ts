/**
 * The complete sandbox (design §9, issue 9): the agent in sandbox mode starts a real BIND for its
 * local dns-flip targets and two real etcd for its local etcd-sync-teardown target, the simulated
 * synchronizer mirrors between them (heartbeat included), `/healthz` lists them, signed dns-flip
 * and etcd-sync-teardown actions run against them, and stopping the agent leaves no process behind.
 */
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queryRecord } from "../../agent/dns/rfc2136.ts";
import { createEtcdClient } from "../../agent/etcd/client.ts";
import { createLogger } from "../../agent/log.ts";
import { type RunningAgent, startAgent } from "../../agent/main.ts";
import { namedPath } from "../../agent/sandbox/bind-server.ts";
import { requireEtcdBinaries } from "../../agent/sandbox/etcd-server.ts";
import { freePorts } from "../../agent/sandbox/free-port.ts";
import { startLocalServers } from "../../agent/sandbox/local-servers.ts";
import { AgentConfigSchema } from "../../shared/config.ts";
import { type ActionReport, ActionReportSchema } from "../../shared/protocol.ts";
import { SIGNATURE_HEADER, sign } from "../../shared/signature.ts";
import { startBind } from "../support/bind.ts";
import { eventually, startEtcds } from "../support/etcd.ts";
import { processAlive } from "../support/processes.ts";
import { signedGet } from "../support/signed-get.ts";

const AGENT_SECRET = "sandbox-local-servers-secret";
const TSIG_SECRET = Buffer.from("sandbox-local-servers-tsig-key-32").toString("base64");

/** Child processes of this test process whose command is one of `names`. */
function children(names: readonly string[]): { pid: number; comm: string }[] {
  const r = spawnSync("ps", ["-o", "pid=,comm=", "--ppid", String(process.pid)], { encoding: "utf8" });
  return r.stdout
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .flatMap(([pid, comm]) => (pid && comm && names.includes(comm) ? [{ pid: Number(pid), comm }] : []));
}

describe("sandbox local servers (npm start on one machine)", () => {
  let agent: RunningAgent | undefined;
  let ports: { agent: number; dns: number; primary: number; standby: number };
  const lines: string[] = [];

  beforeAll(async () => {
    if (namedPath() === undefined) throw new Error("BIND's `named` is not installed: run `npm run setup`");
    requireEtcdBinaries();
    const [a = 0, d = 0, p = 0, s = 0] = await freePorts(4);
    ports = { agent: a, dns: d, primary: p, standby: s };
    const dnsServer = `127.0.0.1:${d}`;
    const dns = (record: string, primary: string, secondary: string) => ({
      kind: "dns-flip",
      provider: {
        type: "rfc2136",
        server: dnsServer,
        zone: "example.test",
        tsig: { name: "turnout-key", algorithm: "hmac-sha256", secretEnv: "TSIG_SECRET" },
      },
      record: { name: record, type: "A", ttl: 60 },
      values: { primary: [primary], secondary: [secondary] },
      verify: { servers: [dnsServer], timeoutSeconds: 5 },
    });
    const config = AgentConfigSchema.parse({
      listen: `127.0.0.1:${a}`,
      reportUrl: "http://127.0.0.1:1/v1/agent/reports",
      targets: {
        "bootstrap-dns": dns("www.example.test", "172.30.41.193", "172.30.41.194"),
        "platform-dns": dns("platform.example.test", "172.30.50.10", "172.30.51.10"),
        "global-dr": {
          kind: "etcd-sync-teardown",
          etcd: {
            primary: { endpoints: [`http://127.0.0.1:${p}`] },
            standby: { endpoints: [`http://127.0.0.1:${s}`] },
            prefixes: ["/registry/"],
            heartbeat: { key: "/turnout/heartbeat", maxLagSeconds: 30, write: true },
          },
          sync: { namespace: "cpaas-system", name: "etcd-sync" },
          dns: "platform-dns",
          restart: [{ kind: "Deployment", namespace: "cpaas-system", name: "cluster-transformer" }],
          followUps: ["Remove the port-2379 forwarding from both VIPs' load balancers"],
        },
      },
    });
    agent = await startAgent({
      config,
      mode: "sandbox",
      env: { TURNOUT_AGENT_SECRET: AGENT_SECRET, TSIG_SECRET },
      log: createLogger({ component: "agent" }, { write: (l) => lines.push(l) }),
    });
  }, 30_000);

  afterAll(async () => {
    await agent?.stop();
  });

  it("serves each local dns-flip record from a real BIND holding values.primary", async () => {
    expect(await queryRecord(`127.0.0.1:${ports.dns}`, "www.example.test", "A")).toEqual(["172.30.41.193"]);
    expect(await queryRecord(`127.0.0.1:${ports.dns}`, "platform.example.test", "A")).toEqual(["172.30.50.10"]);
  });

  it("runs two healthy etcd, seeded on the primary and mirrored by the synchronizer, heartbeat included", async () => {
    for (const port of [ports.primary, ports.standby]) {
      const health = (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as { health: string };
      expect(health.health).toBe("true");
    }
    const primary = createEtcdClient({ endpoints: [`http://127.0.0.1:${ports.primary}`] });
    const standby = createEtcdClient({ endpoints: [`http://127.0.0.1:${ports.standby}`] });
    try {
      expect(await primary.getAll().prefix("/registry/sandbox/").keys()).toHaveLength(3);
      await primary.put("/registry/test/written-now").value("v1").exec();
      await eventually(async () => (await standby.get("/registry/test/written-now").string()) === "v1", "mirror");
      await eventually(async () => (await standby.get("/turnout/heartbeat").string()) !== null, "heartbeat mirrored");
      expect(Number(await standby.get("/turnout/heartbeat").string())).toBeGreaterThan(Date.now() - 60_000);
    } finally {
      primary.close();
      standby.close();
    }
  });

  it("says sandbox in /healthz and in its logs, listing the servers it started", async () => {
    const url = agent?.url ?? "";
    const health = (await (await fetch(`${url}/healthz`)).json()) as {
      mode: string;
      sandbox: { bind: { server: string; targets: string[]; started: boolean }[]; etcd: { url: string }[] };
    };
    expect(health.mode).toBe("sandbox");
    expect(health.sandbox.bind).toEqual([
      expect.objectContaining({
        server: `127.0.0.1:${ports.dns}`,
        targets: ["bootstrap-dns", "platform-dns"],
        started: true,
      }),
    ]);
    expect(health.sandbox.etcd.map((e) => e.url)).toEqual([
      `http://127.0.0.1:${ports.primary}`,
      `http://127.0.0.1:${ports.standby}`,
    ]);
    expect(lines.some((l) => l.includes(`sandbox: started BIND on 127.0.0.1:${ports.dns}`))).toBe(true);
  });

  /** Posts a signed failover to the agent and polls its report until the action has finished. */
  async function act(id: string, target: string): Promise<ActionReport> {
    const body = JSON.stringify({
      id,
      target,
      kind: "failover",
      from: "primary",
      to: "secondary",
      issuedAt: new Date().toISOString(),
    });
    const res = await fetch(`${agent?.url}/v1/actions`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        [SIGNATURE_HEADER]: await sign(AGENT_SECRET, body, Math.floor(Date.now() / 1000)),
      },
      body,
    });
    expect(res.status, await res.clone().text()).toBeLessThan(300);
    let report: ActionReport | undefined;
    await eventually(
      async () => {
        const r = await signedGet(agent?.url ?? "", `/v1/actions/${id}`, AGENT_SECRET);
        report = r.ok ? ActionReportSchema.parse(await r.json()) : undefined;
        return report !== undefined && report.status !== "running";
      },
      `${id} finished`,
      20_000,
    );
    if (!report) throw new Error(`no report for ${id}`);
    return report;
  }

  it("flips the record in the local BIND on a signed dns-flip action", async () => {
    const report = await act("bootstrap-dns:1", "bootstrap-dns");
    expect(report.status, JSON.stringify(report)).toBe("succeeded");
    expect(await queryRecord(`127.0.0.1:${ports.dns}`, "www.example.test", "A")).toEqual(["172.30.41.194"]);
  });

  it("tears down the local sync on a signed global-dr failover: consistent, mirror stopped, platform record flipped", async () => {
    const mirrorsBefore = children(["etcdctl"]).length;
    expect(mirrorsBefore).toBe(2);
    const report = await act("global-dr:1", "global-dr");
    expect(report.status, JSON.stringify(report)).toBe("succeeded");
    expect(report.steps.map((step) => [step.name, step.status])).toEqual([
      ["consistency", "succeeded"],
      ["stop-sync", "succeeded"],
      ["flip-dns", "succeeded"],
      ["restart", "succeeded"],
      ["follow-ups", "succeeded"],
    ]);
    expect(children(["etcdctl"])).toEqual([]);
    expect(await queryRecord(`127.0.0.1:${ports.dns}`, "platform.example.test", "A")).toEqual(["172.30.51.10"]);
  });

  it("leaves no named, etcd or etcdctl process behind when the agent stops", async () => {
    const running = agent;
    if (!running) throw new Error("agent did not start");
    const pids = running.localServers?.pids() ?? [];
    expect(pids).toHaveLength(3);
    const before = children(["named", "etcd", "etcdctl"]);
    // The global-dr failover above stopped the make-mirror processes already.
    expect(before.map((c) => c.comm).sort()).toEqual(["etcd", "etcd", "named"]);
    agent = undefined;
    await running.stop();
    expect(children(["named", "etcd", "etcdctl"])).toEqual([]);
    expect([...pids, ...before.map((c) => c.pid)].filter(processAlive)).toEqual([]);
  });
});

describe("sandbox local servers: what the agent does when it cannot or need not start them", () => {
  const dnsTarget = (server: string) => ({
    kind: "dns-flip",
    provider: {
      type: "rfc2136",
      server,
      zone: "example.test",
      tsig: { name: "turnout-key", algorithm: "hmac-sha256", secretEnv: "TSIG_SECRET" },
    },
    record: { name: "www.example.test", type: "A", ttl: 60 },
    values: { primary: ["172.30.41.193"], secondary: ["172.30.41.194"] },
  });
  const config = (server: string, etcd?: { primary: string; standby: string }) =>
    AgentConfigSchema.parse({
      reportUrl: "http://127.0.0.1:1/r",
      targets: {
        "bootstrap-dns": dnsTarget(server),
        ...(etcd
          ? {
              "global-dr": {
                kind: "etcd-sync-teardown",
                etcd: {
                  primary: { endpoints: [etcd.primary] },
                  standby: { endpoints: [etcd.standby] },
                  prefixes: ["/registry/"],
                },
                sync: { namespace: "cpaas-system", name: "etcd-sync" },
                dns: "bootstrap-dns",
              },
            }
          : {}),
      },
    });
  const capture = () => {
    const lines: string[] = [];
    return { lines, log: createLogger({}, { write: (l) => lines.push(l) }) };
  };

  it("warns naming npm run setup and starts nothing when named and etcd are missing", async () => {
    const [d = 0, p = 0, s = 0] = await freePorts(3);
    const { lines, log } = capture();
    const servers = await startLocalServers(
      config(`127.0.0.1:${d}`, { primary: `http://127.0.0.1:${p}`, standby: `http://127.0.0.1:${s}` }),
      { TSIG_SECRET },
      log,
      { installed: { named: false, etcd: false } },
    );
    await servers.stop();
    expect(servers.pids()).toEqual([]);
    expect(servers.summary.skipped.map((x) => x.target)).toEqual(["bootstrap-dns", "global-dr"]);
    expect(servers.summary.skipped.every((x) => x.reason.includes("npm run setup"))).toBe(true);
    expect(lines.filter((l) => l.includes('"level":"warn"') && l.includes("npm run setup"))).toHaveLength(2);
  });

  it("refuses to start BIND without the TSIG secret, naming the variable", async () => {
    const [d = 0] = await freePorts(1);
    await expect(startLocalServers(config(`127.0.0.1:${d}`), {}, capture().log)).rejects.toThrow(
      /dns-flip target bootstrap-dns needs its TSIG secret in the environment variable TSIG_SECRET/,
    );
  });

  it("uses a BIND and an etcd already answering on the configured addresses instead of starting its own", async () => {
    const bind = await startBind({ secret: TSIG_SECRET });
    const [primary, standby] = await startEtcds(["reuse-primary", "reuse-standby"]);
    try {
      if (!primary || !standby) throw new Error("etcd did not start");
      const servers = await startLocalServers(
        config(bind.server, { primary: primary.url, standby: standby.url }),
        { TSIG_SECRET },
        capture().log,
      );
      await servers.stop();
      expect(servers.pids()).toEqual([]);
      expect(servers.summary.bind).toEqual([expect.objectContaining({ server: bind.server, started: false })]);
      expect(servers.summary.etcd.map((e) => e.started)).toEqual([false, false]);
      expect(processAlive(bind.pid) && processAlive(primary.pid) && processAlive(standby.pid)).toBe(true);
    } finally {
      await Promise.all([bind.stop(), primary?.stop(), standby?.stop()]);
    }
  });
});
