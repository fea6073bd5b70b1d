/** Reading a JWT's `exp` (without verifying it: that is the gateway's job) to refresh in time. */

function base64UrlDecode(part: string): string {
  const b64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
  const binary = atob(b64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new TextDecoder().decode(bytes);
}

/** The token's `exp` in ms since the epoch, or undefined if it has none or is not a JWT. */
export function expiresAt(token: string): number | undefined {
  const parts = token.split(".");
  if (parts.length !== 3 || parts[1] === undefined) return undefined;
  try {
    const payload: unknown = JSON.parse(base64UrlDecode(parts[1]));
    if (typeof payload === "object" && payload !== null) {
      const exp = (payload as { exp?: unknown }).exp;
      if (typeof exp === "number" && Number.isFinite(exp)) return exp * 1000;
    }
  } catch {
    return undefined;
  }
  return undefined;
}

/**
 * How long to wait before refreshing a token that expires at `exp` (ms): `margin` before
 * it, but never later than halfway through what is left, so a short-lived token is
 * refreshed in time too.
 */
export function refreshDelay(exp: number, now: number, margin: number): number {
  const left = exp - now;
  if (left <= 0) return 0;
  return Math.max(0, left - Math.min(margin, left / 2));
}
