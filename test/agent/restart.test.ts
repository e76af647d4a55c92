import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigMapActionStore } from "../../agent/memory.ts";
import { type FakeKubeApi, startFakeKubeApi } from "../../agent/sandbox/fake-kube-api.ts";
import type { ActionReport } from "../../shared/protocol.ts";
import { SIGNATURE_HEADER, sign } from "../../shared/signature.ts";
import { freePort } from "../support/free-port.ts";
import { type ReportReceiver, startReportReceiver } from "../support/report-receiver.ts";
import { actionRequest, testAgentConfig } from "../support/test-executors.ts";

const root = join(import.meta.dirname, "../..");
const SECRET = "restart-secret";
let receiver: ReportReceiver;
let child: ChildProcess | undefined;
let kube: FakeKubeApi;
let kubeconfigPath: string;
const dir = mkdtempSync(join(tmpdir(), "turnout-restart-"));

/** Starts an agent process and resolves once it holds the Lease (after any previous holder's expiry). */
async function startChild(port: number): Promise<ChildProcess> {
  const config = {
    ...testAgentConfig(["app"], receiver.url),
    listen: `127.0.0.1:${port}`,
    kubeconfig: kubeconfigPath,
    // A SIGKILLed holder never releases: its successor waits out the lease, so keep it short.
    lease: { name: "turnout-agent", durationSeconds: 2, renewSeconds: 0.5 },
  };
  const c = spawn(process.execPath, ["test/support/restart-agent-child.ts"], {
    cwd: root,
    env: { ...process.env, AGENT_CONFIG: JSON.stringify(config), STATE_DIR: dir, TURNOUT_AGENT_SECRET: SECRET },
    stdio: ["ignore", "pipe", "pipe"],
  });
  await new Promise<void>((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`agent did not start:\n${seen}`)), 15_000);
    const onData = (b: Buffer) => {
      seen += b.toString();
      if (seen.includes("agent listening") && seen.includes("became leader")) {
        clearTimeout(timer);
        resolve();
      }
    };
    c.stdout?.on("data", onData);
    c.stderr?.on("data", onData);
    c.once("exit", (code) => reject(new Error(`agent exited ${code}:\n${seen}`)));
  });
  return c;
}

async function kill9(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => c.once("exit", () => resolve()));
  c.kill("SIGKILL");
  await exited;
}

const stepLog = () =>
  readFileSync(join(dir, "steps.log"), "utf8")
    .trim()
    .split("\n")
    .map((l) => l.split(" "));
const stepDone = (name: string) => (r: ActionReport) =>
  r.actionId === "app:1" && r.steps.some((s) => s.name === name && s.status === "succeeded");

beforeAll(async () => {
  receiver = await startReportReceiver(SECRET);
  // The cluster outlives the agent processes, as a real API server does.
  kube = await startFakeKubeApi({ namespaces: ["turnout"] });
  kubeconfigPath = join(dir, "kubeconfig.json");
  writeFileSync(kubeconfigPath, kube.kubeConfig().exportConfig());
});
afterAll(async () => {
  if (child) await kill9(child);
  await kube.close();
  await receiver.close();
});

describe("agent restart (real child processes, SIGKILL, ConfigMap store and Lease on the fake Kubernetes API)", () => {
  // Four agent processes start one after another here; on a loaded machine each start takes seconds.
  it("killed after each step and restarted, finishes the action without repeating a completed step", {
    timeout: 90_000,
  }, async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const body = JSON.stringify(actionRequest("app", 1));
    const post = async () =>
      fetch(`${url}/v1/actions`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          [SIGNATURE_HEADER]: await sign(SECRET, body, Date.now() / 1000),
        },
        body,
      });

    // Process 1 runs step one; step two waits at its gate; SIGKILL.
    child = await startChild(port);
    const pid1 = String(child.pid);
    expect((await post()).status).toBe(202);
    await receiver.waitFor(stepDone("one"));
    await kill9(child);

    // Process 2 resumes at step two (the gate opens), reaches step three's gate; SIGKILL.
    child = await startChild(port);
    const pid2 = String(child.pid);
    expect((await post()).status).toBe(200); // same id after a restart: still no second run
    writeFileSync(join(dir, "gate-two"), "");
    await receiver.waitFor(stepDone("two"));
    await kill9(child);

    // Process 3 resumes at step three and finishes; SIGKILL after the final report.
    child = await startChild(port);
    const pid3 = String(child.pid);
    writeFileSync(join(dir, "gate-three"), "");
    const final = await receiver.waitFor((r) => r.actionId === "app:1" && r.status === "succeeded");
    expect(final.activeSide).toBe("secondary");
    expect(final.steps.map((s) => s.status)).toEqual(["succeeded", "succeeded", "succeeded"]);
    // The store marks the final report delivered after the acknowledgement; wait for that write.
    const store = new ConfigMapActionStore({ kubeConfig: kube.kubeConfig(), namespace: "turnout" });
    await new Promise<void>((resolve) => {
      // A watch without resourceVersion first replays the current ConfigMaps, then every change.
      const off = kube.store.watch({ resource: "configmaps" }, "turnout", () => {
        store.get("app", "app:1").then((r) => {
          if (!r?.reportDelivered) return;
          off();
          resolve();
        });
      });
    });
    await kill9(child);
    const cm = await kube
      .kubeConfig()
      .makeApiClient(CoreV1Api)
      .readNamespacedConfigMap({ namespace: "turnout", name: "turnout-app" });
    expect(cm.data).toBeDefined();

    // Process 4 has nothing to do; the action answers from the store.
    child = await startChild(port);
    const again = await post();
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ actionId: "app:1", status: "succeeded" });
    await kill9(child);

    expect(stepLog()).toEqual([
      [pid1, "app:1", "one"],
      [pid2, "app:1", "two"],
      [pid3, "app:1", "three"],
    ]);
  });
});
