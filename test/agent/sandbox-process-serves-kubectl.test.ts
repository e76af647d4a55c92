/**
 * `npm run sandbox` (scripts/sandbox.ts, design §11.2) as a person or a crash test uses it: a child
 * process that prints its kubeconfig's path and server on one JSON line, serves kubectl (Debian's
 * kubernetes-client) and @kubernetes/client-node through that kubeconfig, keeps its objects for
 * its lifetime, creates the objects of `--config`, and stops on SIGTERM, removing the kubeconfig.
 */
import { type ChildProcess, execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { CustomObjectsApi, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../agent/sandbox/free-port.ts";
import { spawnTied } from "../../agent/sandbox/tied-child.ts";
import { requireBinary } from "../support/monitoring-process.ts";
import { swapRoutes } from "../support/route-swap-cluster.ts";

const run = promisify(execFile);

let child: ChildProcess;
let dir: string;
let printed: { kubeconfig: string; server: string };
let kubectlBinary: string;
let port: number;

async function kubectl(...args: string[]): Promise<string> {
  const { stdout } = await run(
    kubectlBinary,
    ["--kubeconfig", printed.kubeconfig, "--cache-dir", join(dir, "kube-cache"), ...args],
    { timeout: 20_000 },
  );
  return stdout;
}

const ROUTE = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
  namespace: default
spec:
  parentRefs:
    - name: edge
  rules:
    - backendRefs:
        - {name: blue, port: 80, weight: 100}
        - {name: green, port: 80, weight: 0}
`;

beforeAll(async () => {
  kubectlBinary = requireBinary(process.env.KUBECTL ?? "/usr/bin/kubectl", "kubernetes-client");
  dir = mkdtempSync(join(tmpdir(), "turnout-sandbox-process-"));
  port = await freePort();
  const config = join(dir, "agent.json");
  writeFileSync(
    config,
    JSON.stringify({
      reportUrl: "http://127.0.0.1:9/v1/agent/reports",
      targets: { "egress-gw": { kind: "route-swap", routes: swapRoutes() } },
    }),
  );
  child = spawnTied(
    process.execPath,
    ["scripts/sandbox.ts", "--port", String(port), "--kubeconfig", join(dir, "kubeconfig"), "--config", config],
    { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, TURNOUT_LOG_LEVEL: "warn" } },
  );
  const stdout = child.stdout;
  if (!stdout) throw new Error("no stdout");
  const firstLine = await new Promise<string>((resolve, reject) => {
    createInterface({ input: stdout }).once("line", resolve);
    child.once("exit", (code) => reject(new Error(`npm run sandbox exited with ${code} before printing`)));
  });
  printed = JSON.parse(firstLine) as typeof printed;
}, 30_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    child.kill("SIGKILL");
    await new Promise((resolve) => child.once("exit", resolve));
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("npm run sandbox", () => {
  it("prints the kubeconfig it wrote and the HTTPS server on its --port", () => {
    expect(printed).toEqual({ kubeconfig: join(dir, "kubeconfig"), server: `https://127.0.0.1:${port}` });
    expect(existsSync(printed.kubeconfig)).toBe(true);
  });

  it("serves kubectl get, including the objects of --config", async () => {
    expect(await kubectl("get", "nodes")).toMatch(/node-1\s+Ready/);
    expect(await kubectl("get", "staticroutes")).toContain("primary");
  });

  it("applies a CRD and an object of it, patches it (merge, JSON) and reads it with -o jsonpath", async () => {
    expect(await kubectl("apply", "-f", "examples/plans/cnpg-cluster-crd.yaml")).toContain(
      "customresourcedefinition.apiextensions.k8s.io/clusters.postgresql.cnpg.io created",
    );
    const cluster = join(dir, "cluster.yaml");
    writeFileSync(
      cluster,
      "apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata: {name: pg, namespace: default}\nspec:\n  instances: 3\n  replica: {enabled: true, source: pg-east}\n",
    );
    expect(await kubectl("apply", "-f", cluster)).toContain("cluster.postgresql.cnpg.io/pg created");
    await kubectl("patch", "cluster", "pg", "--type", "merge", "-p", '{"spec":{"replica":{"enabled":false}}}');
    await kubectl(
      "patch",
      "cluster",
      "pg",
      "--type",
      "json",
      "-p",
      '[{"op":"test","path":"/spec/instances","value":3},{"op":"replace","path":"/spec/instances","value":2}]',
    );
    expect(await kubectl("get", "cluster", "pg", "-o", "jsonpath={.spec.replica.enabled} {.spec.instances}")).toBe(
      "false 2",
    );
    await expect(
      kubectl("patch", "cluster", "pg", "--type", "json", "-p", '[{"op":"test","path":"/spec/instances","value":3}]'),
    ).rejects.toThrow(/test failed/);
    expect(await kubectl("explain", "cluster.spec.replica.enabled")).toContain("promotes");
  });

  it("server-side applies a Gateway API HTTPRoute (dry run first), and client-node reads it through the kubeconfig", async () => {
    const route = join(dir, "route.yaml");
    writeFileSync(route, ROUTE);
    expect(await kubectl("apply", "--server-side", "--dry-run=server", "-f", route)).toContain("(server dry run)");
    await expect(kubectl("get", "httproute", "web")).rejects.toThrow(/not found/);
    expect(await kubectl("apply", "--server-side", "-f", route)).toContain("serverside-applied");
    const kc = new KubeConfig();
    kc.loadFromFile(printed.kubeconfig);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const read = (await custom.getNamespacedCustomObject({
      group: "gateway.networking.k8s.io",
      version: "v1",
      plural: "httproutes",
      namespace: "default",
      name: "web",
    })) as {
      spec: { rules: { backendRefs: { weight: number }[] }[] };
      metadata: { managedFields: { manager: string }[] };
    };
    expect(read.spec.rules[0]?.backendRefs.map((b) => b.weight)).toEqual([100, 0]);
    expect(read.metadata.managedFields.map((m) => m.manager)).toContain("kubectl");
    expect(await kubectl("get", "httproute", "web", "-o", "jsonpath={.spec.rules[0].backendRefs[1].weight}")).toBe("0");
  });

  it("stops on SIGTERM and removes its kubeconfig", async () => {
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(existsSync(printed.kubeconfig)).toBe(false);
  });
});
