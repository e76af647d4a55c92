/**
 * Cloudflare Access in worker tests: a local RS256 key stands in for the team's JWKS (through the
 * verifier's test seam) for the tests of one `describe`, and signs assertions the way Access does,
 * for the test config's team and audience.
 */
import { createLocalJWKSet, exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { afterAll, beforeAll } from "vitest";
import { accessTesting } from "../../../worker/http/identity.ts";

export interface AccessSigner {
  /** A signed assertion for `email`; `aud` and `exp` (unix seconds) can be made wrong. */
  assertion(email: string, over?: { aud?: string; exp?: number }): Promise<string>;
  /** The header Access adds to every request: `{ "cf-access-jwt-assertion": … }`. */
  headers(email: string, over?: { aud?: string; exp?: number }): Promise<Record<string, string>>;
}

/** Installs the local key for the calling `describe` block (removed after it). */
export function useAccessKeys(): AccessSigner {
  let privateKey: CryptoKey | undefined;
  beforeAll(async () => {
    const pair = await generateKeyPair("RS256");
    privateKey = pair.privateKey as CryptoKey;
    const jwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "RS256" };
    accessTesting.jwks = createLocalJWKSet({ keys: [jwk] });
  });
  afterAll(() => {
    delete accessTesting.jwks;
  });
  const assertion: AccessSigner["assertion"] = async (email, over = {}) => {
    if (!privateKey) throw new Error("useAccessKeys: the key is made in beforeAll");
    return new SignJWT({ email })
      .setProtectedHeader({ alg: "RS256", kid: "k1" })
      .setIssuer("https://turnout-test.cloudflareaccess.com")
      .setAudience(over.aud ?? "test-access-aud")
      .setIssuedAt()
      .setExpirationTime(over.exp ?? Math.floor(Date.now() / 1000) + 600)
      .sign(privateKey);
  };
  return {
    assertion,
    headers: async (email, over) => ({ "cf-access-jwt-assertion": await assertion(email, over) }),
  };
}
