/**
 * agent/deploy/rbac-etcd-sync-teardown.yaml grants exactly the Kubernetes requests the
 * etcd-sync-teardown executor sends for the example target of agent/deploy/configmap.yaml: a
 * forced teardown (etcd unreachable, so the check proceeds FORCED) runs against the sandbox
 * cluster through a recording proxy, each request becomes (group, resource, namespace, verb,
 * object name), and that set must equal the Role's rules, resourceNames included.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { z } from "zod";
import { type StepContext, StepError } from "../../agent/executor.ts";
import { createEtcdSyncTeardownExecutor } from "../../agent/executors/etcd-sync-teardown.ts";
import { silentLogger } from "../../agent/log.ts";
import { startSandboxCluster } from "../../agent/sandbox/cluster.ts";
import { type AgentConfig, AgentConfigSchema, type EtcdSyncTeardownTarget } from "../../shared/config.ts";
import type { ActionRequest } from "../../shared/protocol.ts";
import { startFakeCloudflare } from "../support/fake-cloudflare-dns.ts";
import { apiTargetOf, MapMemory, type ProxiedRequest, startRecordingProxy } from "../support/route-swap-cluster.ts";
import { DEPLOY_DIR } from "./kustomize-base.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const TOKEN = "cf-token";

/** The shipped example config's etcd-sync-teardown target and the dns-flip target it flips. */
function shippedTargets(): { teardown: [string, Record<string, unknown>]; dns: [string, Record<string, unknown>] } {
  const cm = z
    .object({ data: z.object({ "agent.yaml": z.string() }) })
    .parse(parseYaml(readFileSync(join(DEPLOY_DIR, "configmap.yaml"), "utf8")));
  const config = AgentConfigSchema.parse(parseYaml(cm.data["agent.yaml"]));
  const raw = z
    .object({ targets: z.record(z.string(), z.record(z.string(), z.unknown())) })
    .parse(parseYaml(cm.data["agent.yaml"]));
  const entry = Object.entries(config.targets).find(([, t]) => t.kind === "etcd-sync-teardown");
  if (entry?.[1].kind !== "etcd-sync-teardown") throw new Error("configmap.yaml has no etcd-sync-teardown target");
  const [name, target] = entry;
  return {
    teardown: [name, raw.targets[name] ?? {}],
    dns: [target.dns, raw.targets[target.dns] ?? {}],
  };
}

/** "group|resource|namespace|verb|name" for one API request (name "*" for collections). */
function permissionOf(r: ProxiedRequest): string {
  const { group, namespace, resource: main, name, subresource } = apiTargetOf(r.path);
  const resource = subresource ? `${main}/${subresource}` : main;
  const verb =
    r.method === "GET"
      ? name
        ? "get"
        : "list"
      : ({ POST: "create", PUT: "update", PATCH: "patch", DELETE: "delete" }[r.method] ?? r.method);
  return `${group}|${resource}|${namespace}|${verb}|${name ?? "*"}`;
}

const Rule = z.object({
  apiGroups: z.array(z.string()),
  resources: z.array(z.string()),
  resourceNames: z.array(z.string()).optional(),
  verbs: z.array(z.string()),
});
const RoleDoc = z.object({
  kind: z.string(),
  metadata: z.object({ namespace: z.string().optional() }),
  rules: z.array(Rule).optional(),
});

function granted(): Set<string> {
  const text = readFileSync(join(DEPLOY_DIR, "rbac-etcd-sync-teardown.yaml"), "utf8");
  const out = new Set<string>();
  for (const d of parseAllDocuments(text).map((doc) => RoleDoc.parse(doc.toJS()))) {
    if (d.kind !== "Role") continue;
    for (const r of d.rules ?? [])
      for (const g of r.apiGroups)
        for (const res of r.resources)
          for (const v of r.verbs)
            for (const n of r.resourceNames ?? ["*"]) out.add(`${g}|${res}|${d.metadata.namespace}|${v}|${n}`);
  }
  return out;
}

async function teardownRequests(syncAction: "scale-to-zero" | "delete"): Promise<Set<string>> {
  const { teardown, dns } = shippedTargets();
  const cf = await startFakeCloudflare({ zoneId: "z1", token: TOKEN });
  cleanups.push(() => cf.stop());
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
  cleanups.push(() => sandbox.stop());
  const proxy = await startRecordingProxy(sandbox.api);
  cleanups.push(() => proxy.close());

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
  const controller = new AbortController();
  const ctx: StepContext<EtcdSyncTeardownTarget> = {
    action,
    targetName: action.target,
    target,
    log: silentLogger,
    memory: new MapMemory(),
    signal: controller.signal,
    now: () => Date.now(),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    progress: () => {},
  };
  const done: string[] = [];
  for (const step of executor.steps(action, target)) {
    try {
      await step.run(ctx);
      done.push(step.name);
    } catch (err) {
      throw new Error(`step ${step.name}: ${err instanceof StepError ? `${err.code}: ${err.message}` : String(err)}`);
    }
  }
  expect(done).toEqual(["consistency", "stop-sync", "flip-dns", "restart", "follow-ups"]);
  expect(cf.valuesOf(dnsConfig.record.type, dnsConfig.record.name)).toEqual(dnsConfig.values.secondary);
  return new Set(proxy.requests.map(permissionOf));
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
