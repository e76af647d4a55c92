/**
 * A kubeconfig for people (kubectl) to look at and poke the sandbox cluster (design §9): the fake
 * API's HTTPS port with a self-signed certificate for 127.0.0.1 and its bearer token. HTTPS because
 * client-go, and so kubectl, never sends a bearer token over plain HTTP.
 *
 * The certificate comes from the `openssl` command (Debian's `openssl`, present wherever
 * `ca-certificates` is): Node can make key pairs but not X.509 certificates.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";

/** A PEM key and self-signed certificate for 127.0.0.1, valid for a week. */
export function selfSignedCertificate(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), "turnout-sandbox-tls-"));
  try {
    const [key, cert] = [join(dir, "key.pem"), join(dir, "cert.pem")];
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "7",
        "-subj",
        "/CN=turnout-sandbox",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "-keyout",
        key,
        "-out",
        cert,
      ],
      { stdio: "pipe" },
    );
    return { key: readFileSync(key, "utf8"), cert: readFileSync(cert, "utf8") };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(
      code === "ENOENT"
        ? "openssl is not installed, so the sandbox cannot serve kubectl over HTTPS (install Debian's openssl)"
        : `openssl could not make the sandbox certificate: ${String((err as { stderr?: unknown }).stderr ?? err)}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes a kubeconfig (mode 0600) for `server` that trusts `cert` and sends `token`. */
export function writeKubeconfig(path: string, server: string, cert: string, token: string | undefined): void {
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name: "turnout-sandbox",
        cluster: { server, "certificate-authority-data": Buffer.from(cert).toString("base64") },
      },
    ],
    users: [{ name: "turnout-sandbox", user: token ? { token } : {} }],
    contexts: [{ name: "turnout-sandbox", context: { cluster: "turnout-sandbox", user: "turnout-sandbox" } }],
    "current-context": "turnout-sandbox",
    preferences: {},
  };
  writeFileSync(path, stringify(config), { mode: 0o600 });
  chmodSync(path, 0o600);
}
