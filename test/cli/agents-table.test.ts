/** `turnout agents` (design §11.1): a silent agent, one never heard, and a mode mismatch read plainly. */
import { describe, expect, it } from "vitest";
import { agentsTable } from "../../cli/agents.ts";

const NOW = Date.parse("2026-11-22T10:00:00Z");

describe("turnout agents", () => {
  it("shows each agent's state, last heartbeat, mode and the sides it serves", () => {
    const out = agentsTable(
      [
        {
          name: "agent-a",
          url: "http://a",
          lastHeardAt: "2026-11-22T09:58:00Z",
          silent: true,
          version: "1.2.3",
          mode: "sandbox",
          expectedMode: "cluster",
          notReady: "agent-mode",
          leader: "agent-a-0",
          serves: { "global-dr": ["primary"], "egress-gw": ["primary", "secondary"] },
        },
        {
          name: "agent-b",
          url: "http://b",
          lastHeardAt: null,
          silent: false,
          version: null,
          mode: null,
          leader: null,
          serves: {},
        },
      ],
      NOW,
    );
    const [head, a, b] = out.split("\n");
    expect(head).toMatch(/^AGENT\s+STATE\s+LAST HEARD/);
    expect(a).toMatch(
      /^agent-a\s+SILENT\s+2 min ago\s+1\.2\.3\s+sandbox \(expected cluster: not ready\)\s+agent-a-0\s+global-dr:primary, egress-gw:primary\+secondary$/,
    );
    expect(b).toMatch(/^agent-b\s+not heard yet\s+never/);
  });
});
