/**
 * describeFetchError: fetch's "fetch failed" completed with the cause undici hides in `err.cause`.
 */
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { describeFetchError } from "../../agent/fetch-error.ts";
import { freePort } from "../support/free-port.ts";

async function fetchError(url: string): Promise<unknown> {
  return fetch(url).then(
    () => {
      throw new Error(`fetch ${url} unexpectedly succeeded`);
    },
    (err: unknown) => err,
  );
}

describe("describeFetchError", () => {
  it("names a refused connection and a blocked port", async () => {
    const port = await freePort();
    expect(describeFetchError(await fetchError(`http://127.0.0.1:${port}/`))).toBe(
      `fetch failed: connect ECONNREFUSED 127.0.0.1:${port}`,
    );
    expect(describeFetchError(await fetchError("http://127.0.0.1:6000/"))).toBe("fetch failed: bad port");
  });

  it("adds the code when the cause's message lacks it (connection closed by the server)", async () => {
    const server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : 0;
    try {
      expect(describeFetchError(await fetchError(`http://127.0.0.1:${port}/`))).toBe(
        "fetch failed: other side closed (UND_ERR_SOCKET)",
      );
    } finally {
      server.close();
    }
  });

  it("joins an AggregateError's errors, and leaves errors without a cause as they are", () => {
    const refused = Object.assign(
      new AggregateError(
        [new Error("connect ECONNREFUSED ::1:80"), new Error("connect ECONNREFUSED 127.0.0.1:80")],
        "",
      ),
      { code: "ECONNREFUSED" },
    );
    expect(describeFetchError(new TypeError("fetch failed", { cause: refused }))).toBe(
      "fetch failed: connect ECONNREFUSED ::1:80; connect ECONNREFUSED 127.0.0.1:80",
    );
    expect(describeFetchError(new Error("plain"))).toBe("plain");
    expect(describeFetchError("a string")).toBe("a string");
  });
});
