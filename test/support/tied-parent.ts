/**
 * A parent process for test/agent/tied-child.test.ts: starts what argv[2] names (`sleep`, `named`
 * or `etcd`) the way the sandbox does, prints `{"pids":[…]}` on one line, and waits to be killed.
 */
import { startBindServer } from "../../agent/sandbox/bind-server.ts";
import { startEtcdServer } from "../../agent/sandbox/etcd-server.ts";
import { spawnTied } from "../../agent/sandbox/tied-child.ts";

const what = process.argv[2];
let pids: number[];
if (what === "sleep") {
  pids = [spawnTied("sleep", ["300"], { stdio: "ignore" }).pid ?? -1];
} else if (what === "named") {
  pids = [(await startBindServer()).pid];
} else if (what === "etcd") {
  pids = [(await startEtcdServer("tied")).pid];
} else {
  throw new Error(`usage: tied-parent.ts sleep|named|etcd (got ${what})`);
}
process.stdout.write(`${JSON.stringify({ pids })}\n`);
setInterval(() => {}, 1 << 30);
