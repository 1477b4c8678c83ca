import { createHmac, timingSafeEqual } from 'node:crypto';

/** How far a delivery's webhook-timestamp may be from now (Standard Webhooks' usual 5 minutes). */
export const TOLERANCE_SECONDS = 5 * 60;

/** Why a delivery was refused, or null when its signature holds. */
export type Refusal = string | null;

/**
 * Verifies a Standard Webhooks signature: webhook-signature holds one or more
 * space-separated "v1,<base64 HMAC-SHA256>" of "<webhook-id>.<webhook-timestamp>.<raw body>",
 * keyed with the base64 bytes after "whsec_" in the secret. The timestamp must
 * be within TOLERANCE_SECONDS of nowSeconds (replays of old deliveries fail).
 */
export function verify(
	secret: string,
	headers: { id?: string; timestamp?: string; signature?: string },
	rawBody: Buffer,
	nowSeconds: number,
): Refusal {
	if (!secret) return 'the credential has no signing secret';
	const { id, timestamp, signature } = headers;
	if (!id || !timestamp || !signature) return 'missing webhook-id, webhook-timestamp or webhook-signature';
	if (!/^\d+$/.test(timestamp)) return 'webhook-timestamp is not a number of seconds';
	if (Math.abs(nowSeconds - Number(timestamp)) > TOLERANCE_SECONDS) return 'webhook-timestamp is too old or in the future';
	const key = Buffer.from(secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret, 'base64');
	const expected = createHmac('sha256', key)
		.update(`${id}.${timestamp}.`)
		.update(rawBody)
		.digest();
	for (const part of signature.split(' ')) {
		const [version, value] = part.split(',', 2);
		if (version !== 'v1' || !value) continue;
		const given = Buffer.from(value, 'base64');
		if (given.length === expected.length && timingSafeEqual(given, expected)) return null;
	}
	return 'no signature matches';
}

/** Signs like wahaq does (for tests and tools): the webhook-signature value. */
export function sign(secret: string, id: string, timestamp: string, rawBody: Buffer | string): string {
	const key = Buffer.from(secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret, 'base64');
	return 'v1,' + createHmac('sha256', key).update(`${id}.${timestamp}.`).update(rawBody).digest('base64');
}
