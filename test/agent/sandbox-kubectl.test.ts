/**
 * kubectl itself (Debian's kubernetes-client, /usr/bin/kubectl) against the sandbox cluster
 * (design §9): the kubeconfig the sandbox writes, discovery, server-side printing, OpenAPI v3 for
 * `explain`, `describe`, events, and `patch --subresource=status` making a node NotReady, which
 * the simulated control plane then acts on (unreachable taints, pods not Ready).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type SandboxCluster, startSandboxCluster } from "../../agent/sandbox/cluster.ts";
import { AgentConfigSchema } from "../../shared/config.ts";
import { requireBinary } from "../support/monitoring-process.ts";
import { fenceConfig } from "../support/node-fence-cluster.ts";
import { swapRoutes } from "../support/route-swap-cluster.ts";

const run = promisify(execFile);
const KUBECTL = process.env.KUBECTL ?? "/usr/bin/kubectl";

let sandbox: SandboxCluster;
let dir: string;
let kubeconfig: string;
/** KUBECTL, or kubectl on PATH when that path is missing. */
let kubectlBinary = KUBECTL;

/** Runs kubectl against the sandbox (asynchronously: the fake API serves from this process). */
async function kubectl(...args: string[]): Promise<string> {
  const { stdout } = await run(kubectlBinary, ["--kubeconfig", kubeconfig, ...args], { timeout: 20_000 });
  return stdout;
}

beforeAll(async () => {
  kubectlBinary = requireBinary(KUBECTL, "kubernetes-client");
  dir = mkdtempSync(join(tmpdir(), "turnout-kubectl-"));
  kubeconfig = join(dir, "kubeconfig");
  // The node-fence tests' dc-nodes target (zones dc-1 and cloud-a) beside the route-swap one.
  const fence = fenceConfig({ workloads: [{ kind: "StatefulSet", namespace: "db", name: "postgres" }] });
  const config = AgentConfigSchema.parse({
    ...fence,
    targets: { "egress-gw": { kind: "route-swap", routes: swapRoutes() }, ...fence.targets },
  });
  sandbox = await startSandboxCluster(config, {
    kubeconfigFile: kubeconfig,
    startOperator: false,
    etcdMirror: false,
    controlPlane: { podReadyDelayMs: 20, attachDelayMs: 10 },
  });
}, 30_000);

afterAll(async () => {
  await sandbox?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("kubectl against the sandbox", () => {
  it("writes a private kubeconfig for the HTTPS port and removes it on stop", () => {
    expect(sandbox.kubeconfigFile).toBe(kubeconfig);
    expect(statSync(kubeconfig).mode & 0o777).toBe(0o600);
    expect(sandbox.api.httpsUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it("lists nodes, pods, StaticRoutes and workloads with the API's columns", async () => {
    const out = await kubectl("get", "nodes,pods,staticroutes,deployments,statefulsets", "-A", "-o", "wide");
    for (const n of ["dc-1-1", "dc-1-2", "dc-1-3", "cloud-a-1", "cloud-a-2", "cloud-a-3"]) {
      expect(out).toMatch(new RegExp(`node/${n}\\s+Ready\\s`));
    }
    expect(out).toMatch(/db\s+pod\/postgres-0\s+1\/1\s+Running\s+0\s+\S+\s+dc-1-\d/);
    expect(out).toContain("staticroute.networking.digitalocean.com/primary");
    expect(out).toMatch(/db\s+statefulset\.apps\/postgres\s+1\/1/);
  });

  it("describes a node and explains its fields from the OpenAPI served", async () => {
    const described = await kubectl("describe", "node", "dc-1-1");
    expect(described).toContain("topology.kubernetes.io/zone=dc-1");
    expect(described).toMatch(/Ready\s+True/);
    const explained = await kubectl("explain", "node.spec.taints");
    expect(explained).toContain("KIND:       Node");
    expect(explained).toMatch(/timeAdded\s+<string>/);
  });

  it("marks a node NotReady with patch --subresource=status; the control plane follows", async () => {
    const pod = await kubectl("get", "pod", "-n", "db", "postgres-0", "-o", "jsonpath={.spec.nodeName}");
    const patched = await kubectl(
      "patch",
      "node",
      pod,
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ status: { conditions: [{ type: "Ready", status: "False", reason: "KubeletStopped" }] } }),
    );
    expect(patched).toContain(`node/${pod} patched`);
    await sandbox.controlPlane?.settled();
    const node = JSON.parse(await kubectl("get", "node", pod, "-o", "json")) as {
      spec: { taints?: { key: string; effect: string }[] };
      status: { conditions: { type: string; status: string; lastTransitionTime?: string }[] };
    };
    const ready = node.status.conditions.find((c) => c.type === "Ready");
    expect(ready?.status).toBe("False");
    expect(ready?.lastTransitionTime).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(node.spec.taints?.map((t) => `${t.key}:${t.effect}`).sort()).toEqual([
      "node.kubernetes.io/unreachable:NoExecute",
      "node.kubernetes.io/unreachable:NoSchedule",
    ]);
    expect(await kubectl("get", "nodes")).toMatch(new RegExp(`${pod}\\s+NotReady`));
    expect(await kubectl("get", "pods", "-n", "db")).toMatch(/postgres-0\s+0\/1/);
    expect(await kubectl("get", "events", "-A")).toContain(`Node ${pod} status is now: NodeNotReady`);
  });
});
