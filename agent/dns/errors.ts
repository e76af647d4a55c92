/**
 * DNS failures with stable codes. They extend StepError so an executor step can let them
 * propagate and the runner reports `{code, message}` unchanged.
 */
import { StepError } from "../executor.ts";

/** Stable codes for every DNS failure turnout reports. */
export type DnsErrorCode =
  | "DNS_BADSIG" // NOTAUTH with TSIG error BADSIG: the secret does not match the server's key
  | "DNS_BADKEY" // NOTAUTH with TSIG error BADKEY: the server does not know the key name
  | "DNS_BADTIME" // TSIG time outside the fudge: clocks differ by more than 300 s
  | "DNS_NOTAUTH" // NOTAUTH without a TSIG error: not authoritative for the zone
  | "DNS_NXRRSET" // prerequisite failed: the record no longer holds the expected value
  | "DNS_VALUE_MISMATCH" // read-compare found a value that is neither the old nor the new one
  | "DNS_REFUSED" // the server refused (e.g. no key, or updates not allowed for this key)
  | "DNS_SERVFAIL"
  | "DNS_NOTZONE" // the record is not inside the configured zone
  | "DNS_RCODE" // any other response code
  | "DNS_TIMEOUT"
  | "DNS_NETWORK"
  | "DNS_RESPONSE_UNSIGNED" // a signed request got an unsigned success: discard (RFC 8945 §5.3)
  | "DNS_RESPONSE_BADSIG" // the response's MAC does not verify: tampered or wrong key
  | "DNS_MALFORMED"
  | "DNS_CONFIG" // missing env var, bad secret, bad server address
  | "DNS_VERIFY_TIMEOUT" // listed authoritative servers did not converge in time
  | "DNS_API_AUTH" // HTTP provider 401/403
  | "DNS_API_NOT_FOUND" // HTTP provider 404 (zone/domain/record)
  | "DNS_API_RATE_LIMITED" // 429 still after the bounded retries
  | "DNS_API_ERROR"; // any other HTTP provider error

/** A DNS failure with a stable code. */
export class DnsError extends StepError {
  override readonly code: DnsErrorCode;
  constructor(code: DnsErrorCode, message: string) {
    super(code, message);
    this.name = "DnsError";
    this.code = code;
  }
}
