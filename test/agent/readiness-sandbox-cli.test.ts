/**
 * `turnout sandbox break|mend` against a real sandbox agent (design §11.6): the CLI breaks the
 * incoming node group and the agent's readiness says not ready, naming the check; mend makes it
 * ready again. The agent's endpoint is signed and validated, and an agent outside the sandbox has
 * no such endpoint and the CLI refuses.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../agent/log.ts";
import { type RunningAgent, startAgent } from "../../agent/main.ts";
import { startSandboxCluster } from "../../agent/sandbox/cluster.ts";
import { freePorts } from "../../agent/sandbox/free-port.ts";
import { main } from "../../cli/turnout.ts";
import { AgentConfigSchema } from "../../shared/config.ts";
import { SIGNATURE_HEADER, sign } from "../../shared/signature.ts";

const SECRET = "readiness-sandbox-cli-secret-0123456789";

async function configOn(port: number) {
  return AgentConfigSchema.parse({
    listen: `127.0.0.1:${port}`,
    reportUrl: "http://127.0.0.1:1/v1/agent/reports",
    targets: {
      "dc-nodes": {
        kind: "node-fence",
        nodes: {
          primary: { selector: "topology.kubernetes.io/zone=dc-1" },
          secondary: { selector: "topology.kubernetes.io/zone=cloud-a" },
        },
      },
    },
  });
}

async function cli(argv: string[], agentUrl: string) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(
    argv,
    { TURNOUT_AGENT_URL: agentUrl, TURNOUT_AGENT_SECRET: SECRET },
    {
      out: (l) => out.push(l),
      err: (l) => err.push(l),
    },
  );
  return { code, out: out.join("\n"), err: err.join("\n") };
}

describe("turnout sandbox break|mend", () => {
  let agent: RunningAgent | undefined;

  beforeAll(async () => {
    const [port = 0] = await freePorts(1);
    agent = await startAgent({
      config: await configOn(port),
      mode: "sandbox",
      env: { TURNOUT_AGENT_SECRET: SECRET },
      log: silentLogger,
    });
  }, 30_000);

  afterAll(async () => {
    await agent?.stop();
  });

  it("breaks the incoming node group and mends it, and readiness follows", async () => {
    const running = agent;
    if (!running) throw new Error("agent did not start");
    expect((await running.readiness.evaluate())["dc-nodes"]?.secondary?.ready).toBe(true);

    const broke = await cli(["sandbox", "break", "dc-nodes", "destination-nodes"], running.url);
    expect(broke, broke.err).toMatchObject({ code: 0 });
    expect(broke.out).toMatch(/^broke destination-nodes of dc-nodes: made the secondary group NotReady: cloud-a-/);
    const broken = (await running.readiness.evaluate())["dc-nodes"]?.secondary;
    expect(broken?.ready).toBe(false);
    expect(broken?.checks.filter((c) => !c.ok && c.destination).map((c) => c.name)).toEqual(["destination-nodes"]);

    const mended = await cli(["sandbox", "mend", "dc-nodes", "destination-nodes"], running.url);
    expect(mended, mended.err).toMatchObject({ code: 0 });
    expect((await running.readiness.evaluate())["dc-nodes"]?.secondary?.ready).toBe(true);
  });

  it("refuses a check it cannot break, naming the ones it can", async () => {
    const r = await cli(["sandbox", "break", "dc-nodes", "saved-spec"], agent?.url ?? "");
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/dc-nodes is a node-fence target; saved-spec is route-swap's/);
  });

  it("answers an unsigned request 401 and a malformed one 400 naming the field, as problem+json", async () => {
    const url = `${agent?.url}/v1/sandbox/break`;
    const unsigned = await fetch(url, { method: "POST", body: JSON.stringify({ target: "dc-nodes", check: "x" }) });
    expect(unsigned.status).toBe(401);
    expect(unsigned.headers.get("content-type")).toMatch(/application\/problem\+json/);
    const body = JSON.stringify({ target: "dc-nodes", side: "tertiary" });
    const bad = await fetch(url, {
      method: "POST",
      headers: { [SIGNATURE_HEADER]: await sign(SECRET, body, Math.floor(Date.now() / 1000)) },
      body,
    });
    expect(bad.status).toBe(400);
    expect(bad.headers.get("content-type")).toMatch(/application\/problem\+json/);
    const problem = (await bad.json()) as { errors: { path: string }[] };
    expect(problem.errors.map((e) => e.path).sort()).toEqual(["check", "side"]);
  });
});

describe("outside the sandbox", () => {
  it("has no break endpoint, and the CLI refuses", async () => {
    const [port = 0] = await freePorts(1);
    const config = await configOn(port);
    const cluster = await startSandboxCluster(config);
    const agent = await startAgent({
      config,
      mode: "kubeconfig",
      kubeConfig: cluster.kubeConfig,
      env: { TURNOUT_AGENT_SECRET: SECRET },
      log: silentLogger,
    });
    try {
      const r = await cli(["sandbox", "break", "dc-nodes", "destination-nodes"], agent.url);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/runs in kubeconfig mode; break and mend exist only in the sandbox/);
      const body = JSON.stringify({ target: "dc-nodes", check: "destination-nodes" });
      const direct = await fetch(`${agent.url}/v1/sandbox/break`, {
        method: "POST",
        headers: { [SIGNATURE_HEADER]: await sign(SECRET, body, Math.floor(Date.now() / 1000)) },
        body,
      });
      expect(direct.status).toBe(404);
    } finally {
      await agent.stop();
      await cluster.stop();
    }
  }, 30_000);
});
