/**
 * agent/deploy/base/rbac-etcd-sync-teardown.yaml grants exactly the Kubernetes requests the
 * etcd-sync-teardown executor sends for the example target of agent/deploy/base/configmap.yaml: a
 * forced teardown (etcd unreachable, so the check proceeds FORCED) runs against the sandbox
 * cluster through a recording proxy, each request becomes (group, resource, namespace, verb,
 * object name), and that set must equal the Role's rules, resourceNames included.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { createEtcdSyncTeardownExecutor } from "../../agent/executors/etcd-sync-teardown.ts";
import { silentLogger } from "../../agent/log.ts";
import { startSandboxCluster } from "../../agent/sandbox/cluster.ts";
import { type AgentConfig, AgentConfigSchema, type EtcdSyncTeardownTarget } from "../../shared/config.ts";
import type { ActionRequest } from "../../shared/protocol.ts";
import { useCleanups } from "../support/cleanups.ts";
import { startFakeCloudflare } from "../support/fake-cloudflare-dns.ts";
import { grantsOf, permissionsUsed, rbacDocs } from "../support/rbac-grants.ts";
import { MapMemory, startRecordingProxy } from "../support/route-swap-cluster.ts";
import { runSteps } from "../support/run-steps.ts";
import { DEPLOY_DIR, shippedAgentYaml } from "./kustomize-base.ts";

const cleanup = useCleanups();

const TOKEN = "cf-token";

/** The shipped example config's etcd-sync-teardown target and the dns-flip target it flips. */
function shippedTargets(): { teardown: [string, Record<string, unknown>]; dns: [string, Record<string, unknown>] } {
  const text = shippedAgentYaml();
  const config = AgentConfigSchema.parse(parseYaml(text));
  const raw = z.object({ targets: z.record(z.string(), z.record(z.string(), z.unknown())) }).parse(parseYaml(text));
  const entry = Object.entries(config.targets).find(([, t]) => t.kind === "etcd-sync-teardown");
  if (entry?.[1].kind !== "etcd-sync-teardown") throw new Error("configmap.yaml has no etcd-sync-teardown target");
  const [name, target] = entry;
  return {
    teardown: [name, raw.targets[name] ?? {}],
    dns: [target.dns, raw.targets[target.dns] ?? {}],
  };
}

/** What the Roles of the manifest grant (its bindings have no rules). */
function granted(): Set<string> {
  const docs = rbacDocs(readFileSync(join(DEPLOY_DIR, "rbac-etcd-sync-teardown.yaml"), "utf8"));
  return new Set(grantsOf(docs.filter((d) => d.kind === "Role")));
}

async function teardownRequests(syncAction: "scale-to-zero" | "delete"): Promise<Set<string>> {
  const { teardown, dns } = shippedTargets();
  const cf = await startFakeCloudflare({ zoneId: "z1", token: TOKEN });
  cleanup(() => cf.stop());
  const dnsTarget = {
    ...dns[1],
    provider: { type: "cloudflare", zoneId: "z1", tokenEnv: "CF_API_TOKEN", baseUrl: cf.baseUrl },
  };
  const teardownTarget = {
    ...teardown[1],
    // Nothing listens there: the consistency check cannot verify, and the forced action proceeds.
    etcd: {
      ...(teardown[1].etcd as Record<string, unknown>),
      primary: { endpoints: ["http://127.0.0.1:1"] },
      standby: { endpoints: ["http://127.0.0.1:1"] },
      tls: undefined,
    },
    sync: { ...(teardown[1].sync as Record<string, unknown>), action: syncAction },
  };
  const config: AgentConfig = AgentConfigSchema.parse({
    reportUrl: "http://127.0.0.1:1/v1/agent/reports",
    targets: { [teardown[0]]: teardownTarget, [dns[0]]: dnsTarget },
  });
  const target = config.targets[teardown[0]] as EtcdSyncTeardownTarget;
  const dnsConfig = config.targets[dns[0]];
  if (dnsConfig?.kind !== "dns-flip") throw new Error("dns target");
  for (const v of dnsConfig.values.primary) cf.addRecord(dnsConfig.record.type, dnsConfig.record.name, v);

  // The sandbox creates the synchronizer and every restarted workload, and runs their controllers.
  const sandbox = await startSandboxCluster(config, { etcdMirror: false, startOperator: false, log: silentLogger });
  cleanup(() => sandbox.stop());
  const proxy = await startRecordingProxy(sandbox.api);
  cleanup(() => proxy.close());

  const executor = createEtcdSyncTeardownExecutor({
    kubeConfig: proxy.kubeConfig(),
    agentConfig: config,
    env: { CF_API_TOKEN: TOKEN },
    pollMs: 20,
    verifyIntervalMs: 20,
    etcdCallTimeoutMs: 300,
  });
  const action: ActionRequest = {
    id: `${teardown[0]}:1`,
    target: teardown[0],
    kind: "failover",
    from: "primary",
    to: "secondary",
    dryRun: false,
    force: true,
    reason: "rbac test",
    issuedAt: new Date().toISOString(),
  };
  const runs = await runSteps(executor, action, target, new MapMemory());
  const failed = runs.find((r) => r.error);
  if (failed?.error) throw new Error(`step ${failed.name}: ${failed.error.code}: ${failed.error.message}`);
  expect(runs.map((r) => r.name)).toEqual(["consistency", "stop-sync", "flip-dns", "restart", "follow-ups"]);
  expect(cf.valuesOf(dnsConfig.record.type, dnsConfig.record.name)).toEqual(dnsConfig.values.secondary);
  return permissionsUsed(proxy.requests);
}

describe("rbac-etcd-sync-teardown.yaml", () => {
  it("grants exactly the requests a teardown of the shipped example target sends (scale-to-zero)", async () => {
    const used = await teardownRequests("scale-to-zero");
    expect([...used].sort()).toEqual([...granted()].sort());
  }, 30_000);

  it("needs delete on the synchronizer, and nothing else more, when sync.action is delete (as its comment says)", async () => {
    const used = await teardownRequests("delete");
    const extra = [...used].filter((p) => !granted().has(p));
    expect(extra).toEqual(["apps|deployments|cpaas-system|delete|etcd-sync"]);
  }, 30_000);
});
