/**
 * The part every real monitoring server in the tests shares (Prometheus, Alertmanager, Nagios 4,
 * Icinga 2): find the Debian binary or fail naming `npm run setup`, spawn it tied to this process
 * (killed by the kernel if the test worker dies), wait for a readiness check, stop it with SIGKILL
 * (throwaway temp dirs; a graceful stop only costs time) and remove the temp dir it owns.
 */
import { type ChildProcess, spawnSync } from "node:child_process";
import { appendFileSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import { outputTail, spawnTied } from "../../agent/sandbox/tied-child.ts";

/** The binary at `path` (or found on PATH by `name`), or an error naming `npm run setup` and the package. */
export function requireBinary(path: string, debianPackage: string): string {
  if (existsSync(path)) return path;
  const name = path.split("/").at(-1) ?? path;
  const which = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" });
  const found = which.stdout.trim();
  if (which.status === 0 && found) return found;
  throw new Error(`${name} is not installed: run \`npm run setup\` (installs the Debian package ${debianPackage})`);
}

/** The text of a log file a server writes, or "" before it has written one. */
export function logText(file: string): string {
  return existsSync(file) ? readFileSync(file, "utf8") : "";
}

/** The user and primary group this process runs as: Nagios and Icinga run as them, not as Debian's `nagios`. */
export function currentUserAndGroup(): { user: string; group: string } {
  const user = userInfo().username;
  const id = spawnSync("id", ["-gn"], { encoding: "utf8" });
  const group = id.status === 0 && id.stdout.trim() ? id.stdout.trim() : user;
  return { user, group };
}

/** A started server process. */
export interface ServerProcess {
  pid: number;
  /** The last 16000 characters it printed. */
  output(): string;
  running(): boolean;
  stop(): Promise<void>;
}

export interface SpawnServerOptions {
  /** What to call it in errors ("prometheus", "alertmanager a", …). */
  name: string;
  command: string;
  args: readonly string[];
  cwd?: string;
  env?: Record<string, string>;
  /** Resolves true once the server is ready; polled every 100 ms. */
  ready: () => Promise<boolean>;
  timeoutMs?: number;
  /** Stop with SIGTERM and wait this long before SIGKILL (for servers with helper processes); default 0. */
  gracefulStopMs?: number;
  /**
   * A throwaway directory the server owns (its config, data and logs): removed when the server
   * never becomes ready and after it stops, so no helper can forget the failure path.
   */
  ownedDir?: string;
}

/**
 * Spawns a server and resolves once `ready()` holds; on timeout or exit, kills it, removes its
 * `ownedDir` and throws with its output.
 */
export async function spawnServer(options: SpawnServerOptions): Promise<ServerProcess> {
  const child: ChildProcess = spawnTied(options.command, options.args, {
    cwd: options.cwd,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output = outputTail(child, 16_000);
  let running = true;
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.once("error", () => resolve());
  });
  void exited.then(() => {
    running = false;
  });
  const stop = async () => {
    if (!running) return;
    const grace = options.gracefulStopMs ?? 0;
    if (grace > 0) {
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, grace))]);
    }
    if (running) child.kill("SIGKILL");
    await exited;
  };
  const stopAndRemove = async () => {
    await stop();
    if (options.ownedDir) rmSync(options.ownedDir, { recursive: true, force: true });
  };
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  while (running && Date.now() < deadline) {
    if (await options.ready().catch(() => false)) {
      return { pid: child.pid ?? -1, output, running: () => running, stop: stopAndRemove };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const why = running ? `was not ready within ${options.timeoutMs ?? 30_000} ms` : "exited";
  await stopAndRemove();
  throw new Error(`${options.name} ${why}; its output:\n${output()}`);
}

/** True when GET `url` answers 2xx. */
export async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

/**
 * Appends one external command in the `[<unix seconds>] COMMAND;args` form that both Nagios 4
 * (its command file) and Icinga 2 (its compat command pipe) read.
 */
export function writeExternalCommand(file: string, line: string): void {
  appendFileSync(file, `[${Math.floor(Date.now() / 1000)}] ${line}\n`);
}

/** The check plugin Nagios and Icinga tests run, and how a test sets the state it reports. */
export interface StateCheck {
  /** The plugin: exits with the state last written for its argument (a state file), 0 when none. */
  script: string;
  /** Sets the exit code (0 OK, 1 WARNING, 2 CRITICAL; for hosts 0 UP, 2 DOWN) reported for `name`. */
  setState(name: string, code: number): void;
}

/** Writes the state-check plugin into `dir`; its state files live in `states`. */
export function installStateCheck(dir: string, states: string): StateCheck {
  const script = join(dir, "state-check.sh");
  // The plugin contract: first line is the output, the exit code the state.
  writeFileSync(
    script,
    '#!/bin/sh\ns=$(cat "$1" 2>/dev/null || echo 0)\ncase $s in 0) w=OK;; 1) w=WARNING;; 2) w=CRITICAL;; *) w=UNKNOWN;; esac\necho "$w - test state $s"\nexit $s\n',
    { mode: 0o755 },
  );
  return {
    script,
    setState(name, code) {
      writeFileSync(join(states, name), `${code}\n`);
    },
  };
}

/** What a Nagios 4 or Icinga 2 test server offers a test, whichever of the two it is. */
export interface CheckServer {
  dir: string;
  process: ServerProcess;
  /** Sets the exit code (0 OK, 1 WARNING, 2 CRITICAL; for hosts 0 UP, 2 DOWN) of checks of `name`. */
  setState(name: string, code: number): void;
  /** Writes one external command (`ACKNOWLEDGE_SVC_PROBLEM;…`) to the command file, timestamped. */
  command(line: string): void;
  /** Stops the server and removes its dir. */
  stop(): Promise<void>;
}

export interface CheckServerOptions extends Omit<SpawnServerOptions, "cwd" | "ownedDir" | "gracefulStopMs"> {
  /** The server's own temp dir: its working directory, removed when it stops or never becomes ready. */
  dir: string;
  /** The external command file (Nagios) or pipe (Icinga's compat listener). */
  commandFile: string;
  stateCheck: StateCheck;
}

/** Spawns Nagios 4 or Icinga 2 in its own dir and resolves once `ready()` holds. */
export async function spawnCheckServer({
  dir,
  commandFile,
  stateCheck,
  ...spawn
}: CheckServerOptions): Promise<CheckServer> {
  const server = await spawnServer({
    ...spawn,
    cwd: dir,
    ownedDir: dir,
    // Their helper processes (Nagios' core and command file workers, Icinga's umbrella children)
    // exit with them on SIGTERM; a SIGKILL would orphan them.
    gracefulStopMs: 3000,
  });
  return {
    dir,
    process: server,
    setState: stateCheck.setState,
    command: (line) => writeExternalCommand(commandFile, line),
    stop: server.stop,
  };
}
