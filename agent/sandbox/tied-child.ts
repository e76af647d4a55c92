/**
 * Child processes that die with the process that started them, and the tail of what they print. The sandbox and the tests start
 * real servers (named, etcd, etcdctl make-mirror); a graceful exit stops them, but a SIGKILLed
 * agent or test worker would leave them running, holding ports and temp dirs. On Linux,
 * util-linux's `setpriv --pdeathsig KILL` (Essential in Debian, so always here) asks the kernel
 * to kill the child when its parent dies, then execs the command: same pid, same stdio.
 * Where setpriv is missing the command is spawned as it is.
 */
import { type ChildProcess, type SpawnOptions, spawn, spawnSync } from "node:child_process";

let setprivPath: string | null | undefined;

/** setpriv's path when it supports `--pdeathsig`, else null (looked up once). */
export function setpriv(): string | null {
  if (setprivPath === undefined) {
    const r = spawnSync("setpriv", ["--help"], { encoding: "utf8" });
    setprivPath = r.status === 0 && r.stdout.includes("--pdeathsig") ? "setpriv" : null;
  }
  return setprivPath;
}

/** `spawn(command, args, options)`, with the child killed by the kernel if this process dies. */
export function spawnTied(command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  const tie = process.platform === "linux" ? setpriv() : null;
  return tie
    ? spawn(tie, ["--pdeathsig", "KILL", "--", command, ...args], options)
    : spawn(command, [...args], options);
}

/**
 * Keeps the last `maxChars` of the child's stdout and stderr (and a spawn error's message) for
 * diagnostics; bounded, since the sandbox's servers run and log for as long as the agent does.
 */
export function outputTail(child: ChildProcess, maxChars: number): () => string {
  let output = "";
  const keep = (text: string) => {
    output = (output + text).slice(-maxChars);
  };
  child.stdout?.on("data", (chunk: Buffer) => keep(chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => keep(chunk.toString()));
  child.on("error", (err) => keep(`\n${err.message}`));
  return () => output;
}
