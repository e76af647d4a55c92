/**
 * How the agent reaches Kubernetes (design §8): the kubeconfig file named in the config, the pod's
 * service account (in-cluster), or, when neither exists, the in-process sandbox cluster of
 * design §9. The mode is decided by agent/mode.ts.
 */
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import type { AgentConfig } from "../shared/config.ts";
import type { Logger } from "./log.ts";
import { type ClusterMode, detectMode } from "./mode.ts";
import { type SandboxCluster, type SandboxClusterOptions, startSandboxCluster } from "./sandbox/cluster.ts";

export interface KubeConnection {
  mode: ClusterMode;
  kubeConfig: KubeConfig;
  /** The simulated cluster, in sandbox mode. */
  sandbox: SandboxCluster | undefined;
  /** Stops the sandbox (a no-op for a real cluster). */
  close(): Promise<void>;
}

export interface ConnectKubeOptions {
  /** Overrides detection (tests). */
  mode?: ClusterMode;
  /** Service-account token path used for detection (tests). */
  tokenPath?: string;
  sandbox?: SandboxClusterOptions;
  log?: Logger;
}

/** A KubeConfig for a real cluster: the config's kubeconfig file, or the pod's service account. */
export function realKubeConfig(
  mode: Exclude<ClusterMode, "sandbox">,
  config: Pick<AgentConfig, "kubeconfig">,
): KubeConfig {
  const kc = new KubeConfig();
  if (mode === "kubeconfig") {
    if (!config.kubeconfig) throw new Error("kubeconfig mode needs the config's `kubeconfig` path");
    kc.loadFromFile(config.kubeconfig);
  } else kc.loadFromCluster();
  if (!kc.getCurrentCluster()) throw new Error(`no current cluster in the ${mode} Kubernetes configuration`);
  return kc;
}

/** Connects to Kubernetes for the config's mode, starting the sandbox cluster when there is no real one. */
export async function connectKube(config: AgentConfig, options: ConnectKubeOptions = {}): Promise<KubeConnection> {
  const mode = options.mode ?? detectMode(config, options.tokenPath);
  if (mode !== "sandbox") {
    return { mode, kubeConfig: realKubeConfig(mode, config), sandbox: undefined, close: async () => {} };
  }
  // A kubeconfig for people (kubectl), logged by the sandbox; one per agent process.
  const kubeconfigFile =
    process.env.TURNOUT_SANDBOX_KUBECONFIG ?? join(tmpdir(), `turnout-sandbox-${process.pid}.kubeconfig`);
  const sandbox = await startSandboxCluster(config, { log: options.log, kubeconfigFile, ...options.sandbox });
  return { mode, kubeConfig: sandbox.kubeConfig, sandbox, close: () => sandbox.stop() };
}
