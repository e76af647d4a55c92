import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { app } from "../../worker/http/app.ts";

const body = JSON.stringify({ version: "4", alerts: [] });

describe("bearer tokens", () => {
  it.each([
    ["/v1/alertmanager", "POST"],
    ["/v1/nagios", "POST"],
    ["/v1/targets", "GET"],
    ["/v1/targets/fleet-0", "GET"],
    ["/v1/targets/fleet-0/events", "GET"],
  ])("%s refuses a request without a token", async (path, method) => {
    const res = await exports.default.fetch(`http://w${path}`, { method, body: method === "POST" ? body : null });
    expect(res.status).toBe(401);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
  });

  it.each([
    ["/v1/alertmanager", "Bearer test-nagios-token"],
    ["/v1/alertmanager", "Bearer test-am-token-and-more"],
    ["/v1/alertmanager", "Basic dGVzdC1hbS10b2tlbg=="],
    ["/v1/nagios", "Bearer test-am-token"],
  ])("%s refuses %s", async (path, authorization) => {
    const res = await exports.default.fetch(`http://w${path}`, { method: "POST", headers: { authorization }, body });
    expect(res.status).toBe(401);
  });

  it("accepts the scheme in any case", async () => {
    const res = await exports.default.fetch("http://w/v1/alertmanager", {
      method: "POST",
      headers: { authorization: "bearer test-am-token" },
      body,
    });
    expect(res.status).toBe(200);
  });

  it.each([
    ["ALERTMANAGER_TOKEN", "/v1/alertmanager", "POST", "test-am-token"],
    ["NAGIOS_TOKEN", "/v1/nagios", "POST", "test-nagios-token"],
  ])("refuses everyone, even the old token, when %s is unset", async (name, path, method, token) => {
    for (const value of [undefined, ""]) {
      const res = await app.request(
        path,
        { method, headers: { authorization: `Bearer ${token}` }, body: method === "POST" ? body : null },
        { ...env, [name]: value },
      );
      expect(res.status).toBe(401);
      expect(((await res.json()) as { detail: string }).detail).toBe(
        `${name} is not configured, so this endpoint refuses every request`,
      );
    }
  });
});
