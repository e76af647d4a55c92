/**
 * A real etcd synchronizer: one `etcdctl make-mirror --prefix <p> <destination>` process per
 * prefix (real-components §2), so stopping it really stops the sync. The sandbox backs an
 * etcd-sync-teardown target's synchronizer Deployment with it (design §9): replicas > 0 runs the
 * mirror, scaling to zero (or deleting the Deployment) kills it. Tests use it directly.
 *
 * make-mirror copies the prefix at one revision, then follows the watch stream; it never deletes
 * keys that exist only on the destination, and it can stay alive yet stop syncing after a
 * network fault (etcd issue #9569), which is why turnout measures consistency instead of
 * trusting the process.
 */
import { type ChildProcess, spawnSync } from "node:child_process";
import { outputTail, spawnTied } from "./tied-child.ts";

/** TLS files for both ends (etcdctl's --cacert/--cert/--key and --dest-* flags). */
export interface MirrorTls {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface MirrorOptions {
  /** Source endpoints (URLs or host:port). */
  primaryEndpoints: readonly string[];
  /** Destination endpoints; make-mirror takes one destination, so the first is used. */
  standbyEndpoints: readonly string[];
  prefixes: readonly string[];
  tls?: MirrorTls;
  /** Called when a mirror process exits on its own (not through stop()). */
  onUnexpectedExit?: (prefix: string, code: number | null, output: string) => void;
}

/** A running synchronizer: one make-mirror process per prefix. */
export interface EtcdMirror {
  readonly pids: readonly number[];
  /** True while every process is alive. */
  running(): boolean;
  /** Kills every process (SIGTERM, then SIGKILL after 2 s) and resolves when all have exited. */
  stop(): Promise<void>;
}

/** The message a caller shows when the etcd binaries are missing. */
export const ETCD_SETUP_HINT =
  "etcd/etcdctl not found on PATH: run `npm run setup` (installs etcd-server and etcd-client)";

/** True when `etcdctl` can be run. */
export function etcdctlAvailable(): boolean {
  const r = spawnSync("etcdctl", ["version"], { env: { ...process.env, ETCDCTL_API: "3" }, stdio: "ignore" });
  return r.status === 0;
}

/** etcdctl takes host:port destinations; strip the scheme so both URL and host:port configs work. */
function hostPort(endpoint: string): string {
  return endpoint.replace(/^[a-z]+:\/\//, "").replace(/\/+$/, "");
}

/** Starts one make-mirror process per prefix from the primary to the standby. */
export function startEtcdMirror(options: MirrorOptions): EtcdMirror {
  const dest = options.standbyEndpoints[0];
  if (dest === undefined) throw new Error("make-mirror needs a standby endpoint");
  const children: ChildProcess[] = [];
  const exited = new Set<ChildProcess>();
  let stopping = false;
  // The verified plain recipe (real-components §2) passes host:port; with TLS keep the https://
  // URLs so the scheme cannot be misread.
  const endpoint = options.tls ? (e: string) => e : hostPort;
  for (const prefix of options.prefixes) {
    const args = [`--endpoints=${options.primaryEndpoints.map(endpoint).join(",")}`];
    if (options.tls) {
      const { caFile, certFile, keyFile } = options.tls;
      args.push(`--cacert=${caFile}`, `--cert=${certFile}`, `--key=${keyFile}`);
      args.push("make-mirror", `--dest-cacert=${caFile}`, `--dest-cert=${certFile}`, `--dest-key=${keyFile}`);
    } else {
      args.push("make-mirror");
    }
    args.push("--prefix", prefix, endpoint(dest));
    const child = spawnTied("etcdctl", args, {
      env: { ...process.env, ETCDCTL_API: "3" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    // make-mirror prints a running count of synced keys; keep only the tail for diagnostics.
    const output = outputTail(child, 4000);
    child.once("exit", (code) => {
      exited.add(child);
      if (!stopping) options.onUnexpectedExit?.(prefix, code, output());
    });
    children.push(child);
  }
  return {
    pids: children.map((c) => c.pid ?? -1),
    running: () => !stopping && children.every((c) => !exited.has(c) && c.exitCode === null),
    async stop() {
      stopping = true;
      await Promise.all(children.map((c) => killAndWait(c, exited)));
    },
  };
}

async function killAndWait(child: ChildProcess, exited: Set<ChildProcess>): Promise<void> {
  if (exited.has(child) || child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  // A stalled mirror may be SIGSTOPped (tests simulate etcd issue #9569 that way); SIGCONT lets
  // the pending SIGTERM be delivered.
  child.kill("SIGCONT");
  const timer = setTimeout(() => child.kill("SIGKILL"), 2000);
  await gone;
  clearTimeout(timer);
}

/** A synchronizer Deployment backed by a real mirror (sandbox, tests). */
export interface MirrorDeployment {
  namespace: string;
  name: string;
  mirror: MirrorOptions;
}

/** Starts and stops mirrors as their Deployments scale (plug `onScale` into the workload controllers). */
export interface EtcdMirrorBackend {
  /** replicas > 0 runs the Deployment's mirror (one, however many replicas), 0 stops it. */
  onScale(key: { kind: string; namespace: string; name: string }, replicas: number): Promise<void>;
  /** True while the Deployment's mirror runs. */
  running(namespace: string, name: string): boolean;
  /** The make-mirror process ids of the Deployment's mirror (empty when stopped). */
  pids(namespace: string, name: string): readonly number[];
  /** Resolves when every start/stop requested so far has finished. */
  idle(): Promise<void>;
  /** Stops every mirror (afterAll, sandbox shutdown). */
  stop(): Promise<void>;
}

/** Backs each listed Deployment with a make-mirror that lives exactly while it has replicas. */
export function createEtcdMirrorBackend(deployments: readonly MirrorDeployment[]): EtcdMirrorBackend {
  const byKey = new Map(deployments.map((d) => [`${d.namespace}/${d.name}`, d]));
  const mirrors = new Map<string, EtcdMirror>();
  // Transitions of one Deployment run in order, so a quick 1 → 0 → 1 ends with a running mirror.
  const chains = new Map<string, Promise<void>>();
  const transition = (key: string, fn: () => Promise<void>): Promise<void> => {
    const next = (chains.get(key) ?? Promise.resolve()).then(fn);
    chains.set(
      key,
      next.catch(() => {}),
    );
    return next;
  };
  return {
    onScale(key, replicas) {
      const id = `${key.namespace}/${key.name}`;
      const deployment = byKey.get(id);
      if (key.kind !== "Deployment" || !deployment) return Promise.resolve();
      return transition(id, async () => {
        const current = mirrors.get(id);
        if (replicas > 0) {
          if (current?.running()) return;
          if (current) await current.stop();
          mirrors.set(id, startEtcdMirror(deployment.mirror));
        } else if (current) {
          mirrors.delete(id);
          await current.stop();
        }
      });
    },
    running: (namespace, name) => mirrors.get(`${namespace}/${name}`)?.running() ?? false,
    pids: (namespace, name) => mirrors.get(`${namespace}/${name}`)?.pids ?? [],
    async idle() {
      await Promise.all(chains.values());
    },
    async stop() {
      await Promise.all(chains.values());
      const all = [...mirrors.values()];
      mirrors.clear();
      await Promise.all(all.map((m) => m.stop()));
    },
  };
}

/**
 * The prefixes a synchronizer for an etcd-sync-teardown target must mirror: the compared
 * prefixes plus the heartbeat key when no prefix covers it (the lag measurement needs the
 * heartbeat copied to the standby, design §7).
 */
export function mirrorPrefixesFor(etcd: { prefixes: readonly string[]; heartbeat?: { key: string } }): string[] {
  const out = [...etcd.prefixes];
  const key = etcd.heartbeat?.key;
  if (key !== undefined && !out.some((p) => key.startsWith(p))) out.push(key);
  return out;
}
