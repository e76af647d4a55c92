import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { validateAgentConfig, validateWorkerConfig } from "../../shared/config.ts";

const readJson = (path: string): unknown => JSON.parse(readFileSync(new URL(`../../${path}`, import.meta.url), "utf8"));

describe("worker config", () => {
  it("accepts the bundled turnout.config.json and fills §5 policy defaults", () => {
    const r = validateWorkerConfig(readJson("turnout.config.json"));
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    const policy = r.value.targets["bootstrap-dns"]?.policy;
    expect(policy).toEqual({
      holdSeconds: 30,
      quorum: 1,
      cooldownSeconds: 600,
      approval: "auto",
      approvalTimeoutSeconds: 900,
      failback: "manual",
      failbackAfterSeconds: 300,
      flap: { windowSeconds: 600, maxTransitions: 4 },
      maxAutoActionsPerDay: 2,
      actionTimeoutSeconds: 600,
      dispatchRetries: 5,
      staleAfterSeconds: 28800,
      requireReady: false,
    });
    expect(r.value.readiness).toEqual({ intervalSeconds: 300 });
    // The local two agents of design §11.1: sandbox mode, each side naming its agent.
    expect(r.value.agents?.["agent-a"]).toMatchObject({
      url: "http://127.0.0.1:8788",
      transport: "direct",
      mode: "sandbox",
    });
    expect(r.value.agents?.["agent-b"]).toMatchObject({
      url: "http://127.0.0.1:8789",
      transport: "direct",
      mode: "sandbox",
    });
    expect(r.value.targets["global-dr"]?.sides.secondary.agent).toBe("agent-b");
    expect(r.value.targets["egress-gw"]?.sides.secondary.agent).toBe("agent-a");
  });

  it("accepts the design §8 example verbatim", () => {
    const example = {
      agent: { url: "http://127.0.0.1:8788", transport: "direct" },
      targets: {
        "egress-gw": {
          sides: {
            primary: { matchers: ['alertname="GatewayDown"', 'gateway="10.116.0.4"'] },
            secondary: { matchers: ['alertname="GatewayDown"', 'gateway="10.116.0.12"'] },
          },
          policy: { holdSeconds: 30, quorum: 1, approval: "auto", failback: "manual" },
          drill: { cron: "0 3 * * 1" },
        },
      },
    };
    expect(validateWorkerConfig(example).ok).toBe(true);
  });

  it("lists every problem with its path", () => {
    const r = validateWorkerConfig({
      agent: { url: "ftp://x", transport: "pigeon" },
      targets: {
        t1: {
          sides: { primary: { matchers: ['alertname=~"("'] }, secondary: {} },
          policy: { holdSeconds: -1, bogus: 1 },
          drill: { cron: "every monday" },
        },
      },
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const paths = r.problems.map((p) => p.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        "agent.url",
        "agent.transport",
        "targets.t1.sides.primary.matchers.0",
        "targets.t1.sides.secondary",
        "targets.t1.policy.holdSeconds",
        "targets.t1.policy",
        "targets.t1.drill.cron",
      ]),
    );
    expect(r.problems.find((p) => p.path === "targets.t1.sides.primary.matchers.0")?.message).toMatch(/invalid regex/);
  });
});

describe("chatops.slack.notifyChannel", () => {
  const base = {
    agent: { url: "http://127.0.0.1:8788" },
    targets: { t: { sides: { primary: { matchers: ['a="1"'] }, secondary: { matchers: ['a="2"'] } } } },
  };
  it("takes a channel id, and names the field when given a channel name", () => {
    expect(validateWorkerConfig({ ...base, chatops: { slack: { notifyChannel: "C012AB3CD" } } }).ok).toBe(true);
    const r = validateWorkerConfig({ ...base, chatops: { slack: { notifyChannel: "#ops" } } });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems).toEqual([
      { path: "chatops.slack.notifyChannel", message: expect.stringContaining("channel id such as C012AB3CD") },
    ]);
  });
});

describe("agent config", () => {
  it("accepts the repo's agent-a.config.json and agent-b.config.json (design §11.1 local: 8788 and 8789)", () => {
    for (const [file, name, listen] of [
      ["agent-a.config.json", "agent-a", "127.0.0.1:8788"],
      ["agent-b.config.json", "agent-b", "127.0.0.1:8789"],
    ] as const) {
      const r = validateAgentConfig(readJson(file));
      if (!r.ok) throw new Error(JSON.stringify(r.problems));
      expect([r.value.name, r.value.listen]).toEqual([name, listen]);
    }
  });

  it("requires an etcd-sync-teardown target's dns to name a dns-flip target", () => {
    const r = validateAgentConfig({
      reportUrl: "http://127.0.0.1:8787/v1/agent/reports",
      targets: {
        "global-dr": {
          kind: "etcd-sync-teardown",
          etcd: {
            primary: { endpoints: ["http://10.0.0.10:2379"] },
            standby: { endpoints: ["http://10.0.1.10:2379"] },
            prefixes: ["/registry/"],
          },
          sync: { namespace: "cpaas-system", name: "etcd-sync" },
          dns: "platform-dns",
        },
      },
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems).toContainEqual({
      path: "targets.global-dr.dns",
      message: 'names "platform-dns", which is not a dns-flip target of this agent',
    });
  });

  it("reports the closest branch of a discriminated union, not a generic error", () => {
    const r = validateAgentConfig({
      reportUrl: "http://x/",
      targets: {
        d: {
          kind: "dns-flip",
          provider: { type: "rfc2136", zone: "z" },
          record: { name: "a" },
          values: { primary: ["1"], secondary: ["2"] },
        },
      },
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const paths = r.problems.map((p) => p.path);
    expect(paths).toContain("targets.d.provider.server");
    expect(paths).toContain("targets.d.provider.tsig");
  });
});
