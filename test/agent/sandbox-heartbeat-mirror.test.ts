/**
 * The sandbox's synchronizer mirrors the heartbeat key too when no compared prefix covers it:
 * without it the standby never sees a heartbeat and every sandboxed etcd-sync-teardown is refused
 * for lag (design §7, §9). Real etcd pair, real `etcdctl make-mirror`.
 */
import { Etcd3 } from "etcd3";
import { afterAll, describe, expect, it } from "vitest";
import { startSandboxCluster } from "../../agent/sandbox/cluster.ts";
import { type AgentConfig, validateAgentConfig } from "../../shared/config.ts";
import { type EtcdInstance, eventually, startEtcds } from "../support/etcd.ts";

function agentConfig(primary: string, standby: string): AgentConfig {
  const result = validateAgentConfig({
    reportUrl: "http://127.0.0.1:8787/v1/agent/reports",
    targets: {
      "platform-dns": {
        kind: "dns-flip",
        provider: { type: "cloudflare", zoneId: "z", tokenEnv: "CF_API_TOKEN" },
        record: { name: "www.example.test", type: "A", ttl: 60 },
        values: { primary: ["172.30.41.193"], secondary: ["172.30.41.194"] },
      },
      "global-dr": {
        kind: "etcd-sync-teardown",
        etcd: {
          primary: { endpoints: [primary] },
          standby: { endpoints: [standby] },
          prefixes: ["/registry/"],
          heartbeat: { key: "/turnout/heartbeat", write: true },
        },
        sync: { kind: "Deployment", namespace: "cpaas-system", name: "etcd-sync" },
        dns: "platform-dns",
      },
    },
  });
  if (!result.ok) throw new Error(JSON.stringify(result.problems));
  return result.value;
}

describe("sandbox synchronizer and the heartbeat key", () => {
  let etcds: EtcdInstance[] = [];
  afterAll(async () => {
    await Promise.all(etcds.map((e) => e.stop()));
  });

  it("mirrors a heartbeat key outside the compared prefixes to the standby", async () => {
    etcds = await startEtcds(["hb-primary", "hb-standby"]);
    const [primary, standby] = etcds as [EtcdInstance, EtcdInstance];
    const sandbox = await startSandboxCluster(agentConfig(primary.url, standby.url), {
      etcdMirror: true,
      startOperator: false,
    });
    const p = new Etcd3({ hosts: primary.url });
    const s = new Etcd3({ hosts: standby.url });
    try {
      await p.put("/turnout/heartbeat").value("2026-11-22T10:00:00Z");
      await p.put("/registry/a").value("1");
      await eventually(async () => (await s.get("/registry/a").string()) === "1", "prefix key mirrored");
      await eventually(
        async () => (await s.get("/turnout/heartbeat").string()) === "2026-11-22T10:00:00Z",
        "heartbeat key mirrored to the standby",
      );
      expect(await s.get("/turnout/heartbeat").string()).toBe("2026-11-22T10:00:00Z");
    } finally {
      p.close();
      s.close();
      await sandbox.stop();
    }
  }, 30_000);
});
