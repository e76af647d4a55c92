import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LeaseElector, startLeaseElector } from "../../agent/lease.ts";
import { silentLogger } from "../../agent/log.ts";
import { type RunningAgent, startAgent } from "../../agent/main.ts";
import { executorRegistry } from "../../agent/runner.ts";
import { type FakeKubeApi, startFakeKubeApi } from "../../agent/sandbox/fake-kube-api.ts";
import { SIGNATURE_HEADER, sign } from "../../shared/signature.ts";
import { type ReportReceiver, startReportReceiver } from "../support/report-receiver.ts";
import { actionRequest, type CountingExecutor, countingExecutor, testAgentConfig } from "../support/test-executors.ts";

const SECRET = "lease-secret";
let receiver: ReportReceiver;
let kube: FakeKubeApi;
const running: RunningAgent[] = [];

beforeAll(async () => {
  receiver = await startReportReceiver(SECRET);
  kube = await startFakeKubeApi({ namespaces: ["turnout"] });
});
afterAll(async () => {
  for (const a of running) await a.stop();
  await kube.close();
  await receiver.close();
});

const LEASE = { name: "turnout-agent", durationSeconds: 2, renewSeconds: 0.25 };

async function replica(
  identity: string,
  counting: CountingExecutor,
): Promise<{ agent: RunningAgent; lease: LeaseElector }> {
  const config = { ...testAgentConfig(["app"], receiver.url), lease: LEASE };
  const lease = startLeaseElector({ kubeConfig: kube.kubeConfig(), namespace: "turnout", ...LEASE, identity });
  const agent = await startAgent({
    config,
    mode: "kubeconfig",
    env: { TURNOUT_AGENT_SECRET: SECRET },
    log: silentLogger,
    kubeConfig: kube.kubeConfig(),
    executors: executorRegistry(counting.executor),
    leadership: lease,
    shutdownGraceMs: 0,
  });
  running.push(agent);
  return { agent, lease };
}

function leading(lease: LeaseElector): Promise<void> {
  return new Promise((resolve) => {
    if (lease.isLeader()) return resolve();
    const off = lease.onChange((s) => {
      if (!s.leader) return;
      off();
      resolve();
    });
  });
}

async function post(url: string, body: unknown): Promise<Response> {
  const raw = JSON.stringify(body);
  return fetch(`${url}/v1/actions`, {
    method: "POST",
    headers: { "content-type": "application/json", [SIGNATURE_HEADER]: await sign(SECRET, raw, Date.now() / 1000) },
    body: raw,
  });
}

describe("two replicas on one Lease (real Lease loop and ConfigMap store on the fake Kubernetes API)", () => {
  it("only the Lease holder executes; when it stops renewing, the other takes over and finishes the pending action", async () => {
    const aExec = countingExecutor({ steps: ["one", "two", "three"], gated: ["two"] });
    const bExec = countingExecutor({ steps: ["one", "two", "three"] });
    const a = await replica("replica-a", aExec);
    await leading(a.lease);
    const b = await replica("replica-b", bExec);

    const refused = await post(b.agent.url, actionRequest("app", 1));
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("2");
    expect(await refused.json()).toMatchObject({ holder: "replica-a" });
    expect((await post(a.agent.url, actionRequest("app", 1))).status).toBe(202);
    await aExec.started("two");

    await a.lease.stop({ release: false }); // a crashed holder: no renewal, no release
    const final = await receiver.waitFor((r) => r.actionId === "app:1" && r.status === "succeeded", 15_000);
    expect(b.lease.isLeader()).toBe(true);
    expect(final.steps.map((s) => s.status)).toEqual(["succeeded", "succeeded", "succeeded"]);
    expect(aExec.calls.map((c) => c.step)).toEqual(["one", "two"]);
    expect(bExec.calls.map((c) => c.step)).toEqual(["two", "three"]);
    const lease = kube.store.get({ group: "coordination.k8s.io", resource: "leases" }, "turnout", "turnout-agent");
    expect(lease?.spec).toMatchObject({ holderIdentity: "replica-b" });
  });
});
