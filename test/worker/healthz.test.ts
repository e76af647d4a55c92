import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { app } from "../../worker/http/app.ts";

describe("GET /healthz", () => {
  it("reports the bundled config as valid", async () => {
    const res = await exports.default.fetch("http://w/healthz");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, config: "valid" });
  });

  it("reports an invalid TURNOUT_CONFIG with every problem, without crashing", async () => {
    const bad = JSON.stringify({ agent: { url: "not a url" }, targets: { "Bad Name": {} } });
    const res = await app.request("/healthz", {}, { ...env, TURNOUT_CONFIG: bad });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { ok: boolean; config: string; errors: { path: string; message: string }[] };
    expect(body.ok).toBe(false);
    expect(body.config).toBe("invalid");
    const paths = body.errors.map((e) => e.path);
    expect(paths).toContain("agent.url");
    expect(paths.some((p) => p.startsWith("targets"))).toBe(true);
  });

  it("reports TURNOUT_CONFIG that is not JSON", async () => {
    const res = await app.request("/healthz", {}, { ...env, TURNOUT_CONFIG: "{nope" });
    const body = (await res.json()) as { config: string; errors: { path: string; message: string }[] };
    expect(body.config).toBe("invalid");
    expect(body.errors[0]?.message).toMatch(/not JSON/);
  });
});

describe("error funnel", () => {
  it("answers unknown paths with a JSON 404 problem", async () => {
    const res = await exports.default.fetch("http://w/nope");
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    expect(await res.json()).toMatchObject({ status: 404, title: "Not found", detail: "no route for GET /nope" });
  });

  it("answers bodies over 1 MiB with 413", async () => {
    const res = await exports.default.fetch("http://w/healthz", { method: "POST", body: "x".repeat(1024 * 1024 + 1) });
    expect(res.status).toBe(413);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
  });
});
