import type {
	IDataObject,
	IExecuteFunctions,
	INodeExecutionData,
	INodeType,
	INodeTypeBaseDescription,
	INodeTypeDescription,
} from 'n8n-workflow';
import { NodeConnectionTypes, NodeOperationError } from 'n8n-workflow';

import { callOk, FINAL_STATES, longPoll, taskStatus } from '../../shared/transport';
import { properties } from './description';

/** Version 1 of the wahaq node. */
export class WahaqV1 implements INodeType {
	description: INodeTypeDescription;

	constructor(baseDescription: INodeTypeBaseDescription) {
		this.description = {
			...baseDescription,
			version: 1,
			defaults: { name: 'wahaq' },
			inputs: [NodeConnectionTypes.Main],
			outputs: [NodeConnectionTypes.Main],
			usableAsTool: true,
			credentials: [{ name: 'wahaqApi', required: true }],
			properties,
		};
	}

	async execute(this: IExecuteFunctions): Promise<INodeExecutionData[][]> {
		const operation = this.getNodeParameter('operation', 0) as string;
		const items = this.getInputData();
		// A bulk teardown is one batch for the whole input, not one per item.
		if (operation === 'bulkTeardown') {
			try {
				return [[{ json: await bulkTeardown(this, items.length) }]];
			} catch (error) {
				if (!this.continueOnFail()) throw error;
				return [[{ json: errorJson(error) }]];
			}
		}
		const out: INodeExecutionData[] = [];
		for (let i = 0; i < items.length; i++) {
			try {
				const answers = await runItem(this, operation, i);
				for (const json of answers) out.push({ json, pairedItem: { item: i } });
			} catch (error) {
				if (!this.continueOnFail()) throw error;
				out.push({ json: errorJson(error), pairedItem: { item: i } });
			}
		}
		return [out];
	}
}

function errorJson(error: { message?: string; description?: string | null; httpCode?: string | null }): IDataObject {
	return {
		status: 'error',
		message: error.description || error.message || 'wahaq request failed',
		error: { message: error.message ?? '', description: error.description ?? '', httpCode: error.httpCode ?? '' },
	};
}

/**
 * The Idempotency-Key of a request this node sends for one item: the same for
 * a retry of the node within one execution (Retry On Fail, a timeout), so a
 * retried request gets the first answer instead of enqueuing again; different
 * between executions, nodes and items.
 */
export function idempotencyKey(ctx: IExecuteFunctions, item: number | string): string {
	return `n8n-${ctx.getExecutionId()}-${ctx.getNode().id}-${item}`;
}

function when(ctx: IExecuteFunctions, i: number): IDataObject {
	const mode = ctx.getNodeParameter('when', i, 'now') as string;
	if (mode === 'in') return { in: String(ctx.getNodeParameter('in', i)).trim() };
	if (mode === 'at') {
		const at = ctx.getNodeParameter('at', i) as unknown;
		const iso = typeof at === 'string' ? at : String((at as { toISO?: () => string })?.toISO?.() ?? at);
		// n8n's date picker gives a local time without offset; wahaq wants RFC 3339.
		const date = new Date(iso);
		if (Number.isNaN(date.getTime())) {
			throw new NodeOperationError(ctx.getNode(), `"${iso}" is not a date and time`, { itemIndex: i });
		}
		return { at: date.toISOString() };
	}
	return {};
}

function waitSettings(ctx: IExecuteFunctions, i: number): { wait: boolean; limit: number } {
	const wait = ctx.getNodeParameter('waitForResult', i, false) as boolean;
	const limit = ctx.getNodeParameter('timeLimit', i, 300) as number;
	return { wait, limit };
}

const isFinal = (task: IDataObject) => FINAL_STATES.includes(String(task.state));

async function runItem(ctx: IExecuteFunctions, operation: string, i: number): Promise<IDataObject[]> {
	switch (operation) {
		case 'logout':
			return [await logout(ctx, i)];
		case 'getTask': {
			const id = encodeURIComponent(String(ctx.getNodeParameter('taskId', i)).trim());
			const { wait, limit } = waitSettings(ctx, i);
			const task = wait
				? (await longPoll(ctx, `/v1/tasks/${id}`, isFinal, limit, i)).body
				: await callOk(ctx, 'GET', `/v1/tasks/${id}`, {}, i);
			return [{ ...(isFinal(task) ? taskStatus(task) : pendingStatus(task)), task }];
		}
		case 'getBatch': {
			const id = String(ctx.getNodeParameter('batchId', i)).trim();
			const { wait, limit } = waitSettings(ctx, i);
			return [await batchReport(ctx, id, wait, limit, i)];
		}
		case 'cancel': {
			const target = ctx.getNodeParameter('cancelTarget', i) as string;
			const id = encodeURIComponent(String(ctx.getNodeParameter('cancelId', i)).trim());
			if (target === 'batch') {
				const answer = await callOk(ctx, 'DELETE', `/v1/batches/${id}`, {}, i);
				return [{ status: 'success', message: `canceled ${answer.canceled} task(s) of batch ${answer.batch_id}`, ...answer }];
			}
			const task = await callOk(ctx, 'DELETE', `/v1/tasks/${id}`, {}, i);
			return [{ status: 'success', message: `logout of ${task.session} canceled`, task }];
		}
		case 'listDeadLetters': {
			const qs: IDataObject = { limit: ctx.getNodeParameter('limit', i, 100) as number };
			const instance = String(ctx.getNodeParameter('dlqInstance', i, '')).trim();
			const batch = String(ctx.getNodeParameter('dlqBatchId', i, '')).trim();
			if (instance) qs.instance = instance;
			if (batch) qs.batch_id = batch;
			const answer = await callOk(ctx, 'GET', '/v1/dlq', { qs }, i);
			return ((answer.tasks as IDataObject[]) ?? []).map((task) => ({ ...task }));
		}
		case 'requeueDeadLetters': {
			const select = ctx.getNodeParameter('requeueSelect', i) as string;
			const body: IDataObject = {};
			if (select === 'ids') {
				const raw = ctx.getNodeParameter('requeueIds', i) as string | string[];
				body.ids = (Array.isArray(raw) ? raw : String(raw).split(','))
					.map((s) => String(s).trim())
					.filter((s) => s !== '');
			} else {
				body.all = true;
				const outcome = ctx.getNodeParameter('requeueOutcome', i, '') as string;
				const instance = String(ctx.getNodeParameter('dlqInstance', i, '')).trim();
				if (outcome) body.outcome = outcome;
				if (instance) body.instance = instance;
			}
			const answer = await callOk(ctx, 'POST', '/v1/dlq/requeue', { body, headers: { 'Idempotency-Key': idempotencyKey(ctx, i) } }, i);
			return [{ status: 'success', message: `requeued ${answer.requeued} dead letter(s)`, ...answer }];
		}
		default:
			throw new NodeOperationError(ctx.getNode(), `unknown operation "${operation}"`, { itemIndex: i });
	}
}

function pendingStatus(task: IDataObject): { status: string; message: string } {
	const when = task.scheduled_for ? ` for ${task.scheduled_for}` : '';
	return { status: 'pending', message: `logout of ${task.session} is ${task.state}${when} (task ${task.id})` };
}

async function logout(ctx: IExecuteFunctions, i: number): Promise<IDataObject> {
	const session = String(ctx.getNodeParameter('session', i)).trim();
	const instance = String(ctx.getNodeParameter('instance', i, '')).trim();
	const body: IDataObject = { session, ...when(ctx, i) };
	if (instance) body.instance = instance;
	const { wait, limit } = waitSettings(ctx, i);
	let task = await callOk(ctx, 'POST', '/v1/logouts', { body, headers: { 'Idempotency-Key': idempotencyKey(ctx, i) } }, i);
	const deduplicated = task.deduplicated === true;
	if (!wait) return { ...pendingStatus(task), task };
	// The long-poll follows the task whatever happens to its schedule: pulled
	// forward, canceled or run at its time, it ends when the task does.
	const followed = await longPoll(ctx, `/v1/tasks/${encodeURIComponent(String(task.id))}`, isFinal, limit, i);
	task = { ...followed.body, ...(deduplicated ? { deduplicated: true } : {}) };
	if (!followed.done) {
		return {
			status: 'error',
			message: `no final state within ${limit} s; the logout of ${session} is ${task.state} (task ${task.id})`,
			task,
		};
	}
	return { ...taskStatus(task), task };
}

async function bulkTeardown(ctx: IExecuteFunctions, itemCount: number): Promise<IDataObject> {
	const source = ctx.getNodeParameter('source', 0) as string;
	const instance = String(ctx.getNodeParameter('instance', 0, '')).trim();
	const body: IDataObject = { ...when(ctx, 0) };
	if (instance) body.instance = instance;
	if (source === 'server') {
		body.all = true;
		const statuses = ctx.getNodeParameter('statuses', 0, []) as string[];
		if (statuses.length > 0) body.status = statuses;
	} else {
		const sessions: string[] = [];
		for (let i = 0; i < itemCount; i++) {
			const s = String(ctx.getNodeParameter('session', i, '') ?? '').trim();
			if (s !== '' && !sessions.includes(s)) sessions.push(s);
		}
		if (sessions.length === 0) {
			throw new NodeOperationError(ctx.getNode(), 'no session names in the input items', {
				description: 'Set "Session" to an expression that names each item\'s session, e.g. {{ $json.session }}',
			});
		}
		body.sessions = sessions;
	}
	const { wait, limit } = waitSettings(ctx, 0);
	const created = await callOk(ctx, 'POST', '/v1/batches', { body, headers: { 'Idempotency-Key': idempotencyKey(ctx, 'batch') } }, 0);
	return batchReport(ctx, String(created.batch_id), wait, limit, 0);
}

/** The sessions of a batch per outcome (at most 50 pages of 1,000 tasks). */
async function batchSessions(ctx: IExecuteFunctions, id: string, i: number): Promise<{ sessions: IDataObject; failed: IDataObject[] }> {
	const sessions: Record<string, string[]> = {};
	const failed: IDataObject[] = [];
	let cursor = '';
	for (let page = 0; page < 50; page++) {
		const qs: IDataObject = { limit: 1000 };
		if (cursor) qs.cursor = cursor;
		const answer = await callOk(ctx, 'GET', `/v1/batches/${encodeURIComponent(id)}/tasks`, { qs }, i);
		for (const task of (answer.tasks as IDataObject[]) ?? []) {
			const key = String(task.outcome || task.state);
			(sessions[key] ??= []).push(String(task.session));
			if (task.state === 'dead' || task.state === 'canceled') {
				failed.push({ session: task.session, id: task.id, state: task.state, outcome: task.outcome ?? '', last_error: task.last_error ?? '' });
			}
		}
		cursor = String(answer.next_cursor ?? '');
		if (!cursor) break;
	}
	return { sessions, failed };
}

async function batchReport(ctx: IExecuteFunctions, id: string, wait: boolean, limit: number, i: number): Promise<IDataObject> {
	const path = `/v1/batches/${encodeURIComponent(id)}`;
	const batch = wait
		? (await longPoll(ctx, path, (b) => b.done === true, limit, i)).body
		: await callOk(ctx, 'GET', path, {}, i);
	const { sessions, failed } = await batchSessions(ctx, id, i);
	const outcomes = (batch.outcomes as IDataObject) ?? {};
	const counts = (batch.counts as IDataObject) ?? {};
	const total = Number(batch.total ?? 0);
	const loggedOut = Number(outcomes.logged_out ?? 0);
	const notFound = Number(outcomes.not_found ?? 0);
	const summary = {
		total,
		logged_out: loggedOut,
		not_found: notFound,
		failed: Number(counts.dead ?? 0),
		canceled: Number(counts.canceled ?? 0),
		deduplicated: Number(batch.deduplicated ?? 0),
	};
	let status: string;
	let message: string;
	if (batch.done !== true) {
		status = wait ? 'error' : 'pending';
		const open = total - loggedOut - notFound - summary.failed - summary.canceled;
		message = wait
			? `batch ${id} is not done within ${limit} s: ${open} of ${total} sessions still open`
			: `batch ${id} enqueued: ${total} sessions`;
	} else {
		message = `Logged out ${loggedOut} of ${total} sessions` + (notFound > 0 ? ` (${notFound} did not exist)` : '');
		if (failed.length > 0) {
			message += '; failed: ' + failed.map((f) => `${f.session} (${f.outcome || f.state})`).join(', ');
		}
		status = summary.failed === 0 && summary.canceled === 0 && batch.error == null ? 'success' : 'error';
	}
	return { status, message, batch_id: id, summary, sessions, failed, batch };
}
