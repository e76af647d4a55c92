/**
 * Runs the real worker in workerd through `wrangler dev` on 127.0.0.1 with a random port, its own
 * persistence directory and an env file, for end-to-end tests, the demo and benchmarks.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePorts } from "./free-port.ts";

const root = join(import.meta.dirname, "../..");

export interface WorkerProcess {
  url: string;
  port: number;
  /** The DevTools inspector port wrangler proxies to the worker (`--inspector-port`), for profiling. */
  inspectorPort: number;
  /** The wrangler process; it leads its own process group, which holds its workerd processes. */
  pid: number;
  /** Everything wrangler printed so far (for failure messages and log assertions). */
  output(): string;
  stop(): Promise<void>;
}

export interface StartWorkerOptions {
  /** Secrets and vars (TURNOUT_CONFIG as a JSON string, tokens, …). */
  vars: Record<string, string>;
  /** Wrangler config file; defaults to the repo's wrangler.toml. */
  config?: string;
  /** The port to listen on (default a free one): for a config that names the worker's own URL (`publicUrl`). */
  port?: number;
  timeoutMs?: number;
}

/**
 * One value for wrangler's dotenv file. Double-quoted dotenv values unescape only `\n`, so a JSON
 * value (TURNOUT_CONFIG) written with JSON.stringify would reach the worker with its `\"` intact;
 * single quotes are literal, so use them whenever the value allows.
 */
function envValue(v: string): string {
  return v.includes("'") || v.includes("\n") ? JSON.stringify(v) : `'${v}'`;
}

/** Starts `wrangler dev` and resolves once `GET /healthz` answers. */
export async function startWorker(options: StartWorkerOptions): Promise<WorkerProcess> {
  // One freePorts call, so the worker's and the inspector's ports differ.
  const [randomPort = 0, inspectorPort = 0] = await freePorts(2);
  const port = options.port ?? randomPort;
  const dir = mkdtempSync(join(tmpdir(), "turnout-worker-"));
  const envFile = join(dir, "vars.env");
  writeFileSync(
    envFile,
    Object.entries(options.vars)
      .map(([k, v]) => `${k}=${envValue(v)}`)
      .join("\n"),
  );
  const wrangler = join(root, "node_modules/.bin/wrangler");
  let out = "";
  const child: ChildProcess = spawn(
    process.execPath,
    [
      wrangler,
      "dev",
      "--config",
      options.config ?? join(root, "wrangler.toml"),
      "--ip",
      "127.0.0.1",
      "--port",
      String(port),
      "--inspector-port",
      String(inspectorPort),
      "--persist-to",
      join(dir, "state"),
      "--env-file",
      envFile,
      "--show-interactive-dev-session=false",
      "--log-level",
      "info",
    ],
    {
      cwd: root,
      env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false", CI: "true" },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    },
  );
  child.stdout?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  child.stderr?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.pid !== undefined) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {
        // already gone
      }
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) return { url, port, inspectorPort, pid: child.pid ?? 0, output: () => out, stop };
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  await stop();
  throw new Error(
    `wrangler dev did not answer /healthz (run \`npm run setup\` if workerd is missing); output:\n${out}`,
  );
}
