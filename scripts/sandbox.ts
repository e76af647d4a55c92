/**
 * npm run sandbox (design §11.2): the simulated cluster alone, in its own process, for as long as
 * it runs: the fake API (every built-in kind, every Gateway API kind, any CRD applied to it), the
 * simulated nodes and workload controllers, the static-route operator and node control plane for
 * the targets of `--config`, and the CloudNativePG simulation. State lives as long as the
 * process, so an agent whose config's `kubeconfig` names the file printed here runs in cluster
 * mode against it and finds the same objects after its own restarts.
 *
 * Prints one line on stdout once the cluster answers, for people and scripts alike:
 *   {"kubeconfig":"/tmp/turnout-sandbox-6443.kubeconfig","server":"https://127.0.0.1:6443"}
 * Logs are JSON lines on stderr. SIGINT or SIGTERM stops it and removes the kubeconfig.
 *
 * Options: --port <https port> (default: a free one), --kubeconfig <path to write>
 * (default: turnout-sandbox-<port>.kubeconfig in the temp dir), --config <agent config>.
 */
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { loadAgentConfigFile } from "../agent/config-file.ts";
import { createLogger } from "../agent/log.ts";
import { startSandboxCluster } from "../agent/sandbox/cluster.ts";
import { freePort } from "../agent/sandbox/free-port.ts";

const log = createLogger({ component: "sandbox" });
const { values } = parseArgs({
  options: {
    port: { type: "string" },
    kubeconfig: { type: "string" },
    config: { type: "string" },
  },
  strict: true,
});

const port = values.port === undefined ? await freePort() : Number(values.port);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  log.error("--port must be a TCP port number", { port: values.port });
  process.exit(2);
}
const kubeconfig = resolve(values.kubeconfig ?? join(tmpdir(), `turnout-sandbox-${port}.kubeconfig`));
const config = values.config ? await loadAgentConfigFile(values.config) : { namespace: "turnout", targets: {} };

const sandbox = await startSandboxCluster(config, { kubeconfigFile: kubeconfig, api: { httpsPort: port }, log });
if (!sandbox.kubeconfigFile || !sandbox.api.httpsUrl) {
  log.error("the sandbox could not write a kubeconfig (is openssl installed?)");
  await sandbox.stop();
  process.exit(1);
}
process.stdout.write(`${JSON.stringify({ kubeconfig: sandbox.kubeconfigFile, server: sandbox.api.httpsUrl })}\n`);

let stopping = false;
const stop = (signal: string) => {
  if (stopping) return;
  stopping = true;
  log.info("sandbox stopping", { signal });
  sandbox.stop().then(
    () => process.exit(0),
    (error: unknown) => {
      log.error("sandbox stop failed", { error: String(error) });
      process.exit(1);
    },
  );
};
process.on("SIGINT", () => stop("SIGINT"));
process.on("SIGTERM", () => stop("SIGTERM"));
