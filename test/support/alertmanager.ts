/**
 * Two real Alertmanagers (Debian `prometheus-alertmanager`) clustered with each other: each on
 * 127.0.0.1 with a random web port and a random cluster (gossip mesh) port, peered with the
 * other, each with its own storage dir and its own copy of the config. Resolves once both report
 * the cluster `ready` with two peers.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePorts } from "./free-port.ts";
import { answers, requireBinary, type ServerProcess, spawnServer } from "./monitoring-process.ts";

export interface AlertmanagerPairOptions {
  /** The alertmanager.yml text for peer `index` (0 or 1): the example with its placeholders filled. */
  config: (index: number) => string;
  /**
   * `--cluster.peer-timeout`: how long peer n waits (n × this) before it sends, so that gossip can
   * tell it the first peer already did. Default 15s as upstream; 0s makes both peers deliver, as
   * during a partition or slow gossip (the case turnout must deduplicate).
   */
  peerTimeout?: string;
}

export interface AlertmanagerPeer {
  url: string;
  /** `host:port` for Prometheus' `alerting` config. */
  address: string;
  process: ServerProcess;
  /** A counter of the peer's own `/metrics`, summed over the series whose labels include `match`. */
  metric(name: string, match?: Record<string, string>): Promise<number>;
}

export interface AlertmanagerPair {
  peers: [AlertmanagerPeer, AlertmanagerPeer];
  stop(): Promise<void>;
}

const SERIES = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/;

/** Parses Prometheus text exposition lines into (name, labels, value). */
function parseMetrics(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const out: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = SERIES.exec(line.trim());
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1] ?? ""] = pair[2] ?? "";
    }
    out.push({ name: m[1] ?? "", labels, value: Number(m[3]) });
  }
  return out;
}

/** Starts two clustered Alertmanagers; resolves when both see the cluster settled with 2 peers. */
export async function startAlertmanagerPair(options: AlertmanagerPairOptions): Promise<AlertmanagerPair> {
  const binary = requireBinary("/usr/bin/prometheus-alertmanager", "prometheus-alertmanager");
  const [webA = 0, webB = 0, meshA = 0, meshB = 0] = await freePorts(4);
  const web = [webA, webB];
  const mesh = [meshA, meshB];
  const dirs: string[] = [];
  const started: ServerProcess[] = [];
  const cleanup = async () => {
    await Promise.all(started.splice(0).map((p) => p.stop()));
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  };
  try {
    const processes = await Promise.all(
      [0, 1].map(async (i) => {
        const dir = mkdtempSync(join(tmpdir(), `turnout-alertmanager-${i}-`));
        dirs.push(dir);
        const configFile = join(dir, "alertmanager.yml");
        writeFileSync(configFile, options.config(i));
        const url = `http://127.0.0.1:${web[i]}`;
        const p = await spawnServer({
          name: `alertmanager ${i}`,
          command: binary,
          args: [
            `--config.file=${configFile}`,
            `--storage.path=${join(dir, "data")}`,
            `--web.listen-address=127.0.0.1:${web[i]}`,
            `--cluster.listen-address=127.0.0.1:${mesh[i]}`,
            `--cluster.advertise-address=127.0.0.1:${mesh[i]}`,
            `--cluster.peer=127.0.0.1:${mesh[1 - i]}`,
            `--cluster.peer-timeout=${options.peerTimeout ?? "15s"}`,
            "--log.level=warn",
          ],
          cwd: dir,
          ready: () => answers(`${url}/-/ready`),
          ownedDir: dir,
        });
        started.push(p);
        return p;
      }),
    );
    const peers = processes.map((p, i): AlertmanagerPeer => {
      const url = `http://127.0.0.1:${web[i]}`;
      return {
        url,
        address: `127.0.0.1:${web[i]}`,
        process: p,
        async metric(name, match = {}) {
          const text = await (await fetch(`${url}/metrics`)).text();
          return parseMetrics(text)
            .filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
            .reduce((sum, s) => sum + s.value, 0);
        },
      };
    });
    const [a, b] = peers;
    if (!a || !b) throw new Error("alertmanager pair did not start");
    // Gossip settles in a few gossip rounds; until then a peer holds its notifications back.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const statuses = await Promise.all(
        peers.map(async (p) => {
          const res = await fetch(`${p.url}/api/v2/status`);
          return (await res.json()) as { cluster: { status: string; peers: unknown[] } };
        }),
      );
      if (statuses.every((s) => s.cluster.status === "ready" && s.cluster.peers.length === 2)) break;
      if (Date.now() > deadline) {
        throw new Error(`alertmanager cluster did not settle: ${JSON.stringify(statuses.map((s) => s.cluster))}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    return { peers: [a, b], stop: cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
