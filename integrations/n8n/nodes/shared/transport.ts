import type {
	IDataObject,
	IExecuteFunctions,
	IHookFunctions,
	IHttpRequestMethods,
	IHttpRequestOptions,
	JsonObject,
} from 'n8n-workflow';
import { NodeApiError } from 'n8n-workflow';

/** The contexts that call wahaq's API: the action node and the trigger's webhook methods. */
export type ApiContext = IExecuteFunctions | IHookFunctions;

/** The task states after which nothing happens to a task any more. */
export const FINAL_STATES = ['completed', 'dead', 'canceled'];

/** One answer of wahaq's API: the status and the parsed body. */
export interface ApiAnswer {
	statusCode: number;
	body: IDataObject;
}

/** The longest long-poll wahaq allows is 60 s; the node asks for 30 s at a time. */
export const POLL_SECONDS = 30;

function parseBody(body: unknown): IDataObject {
	if (body === undefined || body === null || body === '') return {};
	if (Buffer.isBuffer(body)) body = body.toString('utf8');
	if (typeof body === 'string') {
		try {
			const parsed = JSON.parse(body);
			return typeof parsed === 'object' && parsed !== null ? (parsed as IDataObject) : { value: parsed };
		} catch {
			return { text: body };
		}
	}
	return body as IDataObject;
}

/**
 * Calls wahaq with the wahaqApi credential and answers status and body, for
 * every status: the callers decide which statuses are errors, so that a 4xx
 * becomes a NodeApiError carrying wahaq's `detail` (and is never retried by the
 * node), and a 404 on a subscription is "gone" rather than an error.
 */
export async function call(
	ctx: ApiContext,
	method: IHttpRequestMethods,
	path: string,
	opts: { qs?: IDataObject; body?: IDataObject; headers?: IDataObject; timeoutMs?: number } = {},
): Promise<ApiAnswer> {
	const credentials = await ctx.getCredentials('wahaqApi');
	const base = String(credentials.baseUrl ?? '').replace(/\/+$/, '');
	const request: IHttpRequestOptions = {
		method,
		url: base + path,
		qs: opts.qs,
		headers: { Accept: 'application/json', ...(opts.headers ?? {}) },
		json: true,
		ignoreHttpStatusErrors: true,
		returnFullResponse: true,
		timeout: opts.timeoutMs ?? 30_000,
	};
	if (opts.body !== undefined) request.body = opts.body;
	const answer = (await ctx.helpers.httpRequestWithAuthentication.call(ctx, 'wahaqApi', request)) as {
		statusCode: number;
		body: unknown;
	};
	return { statusCode: answer.statusCode, body: parseBody(answer.body) };
}

/** The error for a wahaq answer that is not 2xx: wahaq's `detail` as the description. */
export function apiError(ctx: ApiContext, answer: ApiAnswer, itemIndex?: number): NodeApiError {
	const detail = typeof answer.body.detail === 'string' ? answer.body.detail : undefined;
	const title = typeof answer.body.title === 'string' ? answer.body.title : 'wahaq answered an error';
	return new NodeApiError(ctx.getNode(), answer.body as JsonObject, {
		message: `${answer.statusCode} ${title}`,
		description: detail ?? JSON.stringify(answer.body),
		httpCode: String(answer.statusCode),
		itemIndex,
	});
}

/** call, then throw apiError unless the answer is 2xx. */
export async function callOk(
	ctx: ApiContext,
	method: IHttpRequestMethods,
	path: string,
	opts: { qs?: IDataObject; body?: IDataObject; headers?: IDataObject; timeoutMs?: number } = {},
	itemIndex?: number,
): Promise<IDataObject> {
	const answer = await call(ctx, method, path, opts);
	if (answer.statusCode < 200 || answer.statusCode > 299) throw apiError(ctx, answer, itemIndex);
	return answer.body;
}

/**
 * Follows GET path?wait=… until done(answer) or the time limit: each round is a
 * long-poll of at most 30 s (shorter when less time is left), so the loop makes
 * about one request per 30 s and ends the moment wahaq has the answer. A server
 * that answers a long-poll at once (an old wahaq) costs one request a second.
 * Answers the last body and whether done() held.
 */
export async function longPoll(
	ctx: IExecuteFunctions,
	path: string,
	done: (body: IDataObject) => boolean,
	limitSeconds: number,
	itemIndex: number,
	qs: IDataObject = {},
): Promise<{ body: IDataObject; done: boolean }> {
	const deadline = Date.now() + Math.max(0, limitSeconds) * 1000;
	let body = await callOk(ctx, 'GET', path, { qs }, itemIndex);
	// Bounded twice: by the time limit, and by a round count that a server
	// ignoring ?wait cannot exceed either.
	for (let round = 0; !done(body) && round < limitSeconds + 1; round++) {
		const left = Math.floor((deadline - Date.now()) / 1000);
		if (left < 1) break;
		const wait = Math.min(POLL_SECONDS, left);
		const started = Date.now();
		body = await callOk(ctx, 'GET', path, { qs: { ...qs, wait: `${wait}s` }, timeoutMs: (wait + 15) * 1000 }, itemIndex);
		if (!done(body) && Date.now() - started < 1000) await new Promise((r) => setTimeout(r, 1000));
	}
	return { body, done: done(body) };
}

/** A task's end in the n8n WAHA node's shape {status, message}. */
export function taskStatus(task: IDataObject): { status: string; message: string } {
	const result = task.result as IDataObject | undefined;
	if (result && typeof result.status === 'string' && typeof result.message === 'string') {
		return { status: result.status, message: result.message };
	}
	const state = String(task.state ?? 'unknown');
	let message = `logout of ${task.session} ended ${state}`;
	if (task.outcome) message += ` (${task.outcome})`;
	if (task.last_error) message += `: ${task.last_error}`;
	return { status: state === 'completed' ? 'success' : 'error', message };
}
