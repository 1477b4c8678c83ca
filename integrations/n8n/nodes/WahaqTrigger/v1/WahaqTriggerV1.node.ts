import type {
	IDataObject,
	IHookFunctions,
	INodeType,
	INodeTypeBaseDescription,
	INodeTypeDescription,
	IWebhookFunctions,
	IWebhookResponseData,
} from 'n8n-workflow';
import { NodeConnectionTypes } from 'n8n-workflow';

import { verify } from '../../shared/signature';
import { apiError, call, callOk, taskStatus } from '../../shared/transport';

/** How many webhook-ids the trigger remembers to drop redelivered events. */
export const SEEN_MAX = 500;

/**
 * The webhook-ids seen per workflow and trigger node, in this n8n process.
 * Static data alone does not hold them: n8n 2.40 saves what webhook() writes
 * there only when no execution starts (an execution's Workflow object resets
 * the changed flag of the same data first), so an id noted for a delivery that
 * started the workflow would be lost. Static data keeps them across restarts
 * when n8n does save it; this map keeps them for the process. Both are bounded
 * by SEEN_MAX per trigger.
 */
const seenInProcess = new Map<string, string[]>();

/** Whether id was seen before (in this process or in static data); notes it either way. */
export function seenBefore(processKey: string, stored: string[], id: string): { duplicate: boolean; stored: string[] } {
	const mem = seenInProcess.get(processKey) ?? [];
	const duplicate = mem.includes(id) || stored.includes(id);
	if (!mem.includes(id)) mem.push(id);
	if (mem.length > SEEN_MAX) mem.splice(0, mem.length - SEEN_MAX);
	seenInProcess.set(processKey, mem);
	const next = stored.includes(id) ? stored : [...stored, id].slice(-SEEN_MAX);
	return { duplicate, stored: next };
}

interface TriggerStatic {
	subscriptionId?: string;
	subscriptionUrl?: string;
	seen?: string[];
}

const csv = (s: unknown): string[] =>
	String(s ?? '')
		.split(',')
		.map((x) => x.trim())
		.filter((x) => x !== '');

/** Version 1 of the wahaq Trigger node. */
export class WahaqTriggerV1 implements INodeType {
	description: INodeTypeDescription;

	constructor(baseDescription: INodeTypeBaseDescription) {
		this.description = {
			...baseDescription,
			version: 1,
			defaults: { name: 'wahaq Trigger' },
			inputs: [],
			outputs: [NodeConnectionTypes.Main],
			credentials: [{ name: 'wahaqApi', required: true }],
			webhooks: [{ name: 'default', httpMethod: 'POST', responseMode: 'onReceived', path: 'webhook' }],
			properties: [
				{
					displayName: 'Events',
					name: 'events',
					type: 'multiOptions',
					required: true,
					options: [
						{ name: 'Task Ended', value: 'task.final', description: 'A logout is completed, dead or canceled' },
						{ name: 'Batch Done', value: 'batch.done', description: 'Every session of a batch has ended' },
					],
					default: ['task.final'],
				},
				{
					displayName: 'WAHA Servers',
					name: 'instances',
					type: 'string',
					default: '',
					placeholder: 'default, eu',
					description: "Server names in wahaq, separated by commas; empty: every server wahaq serves when the workflow is activated",
				},
				{
					displayName: 'Outcomes',
					name: 'outcomes',
					type: 'multiOptions',
					options: [
						{ name: 'Auth Failed', value: 'auth_failed' },
						{ name: 'Canceled', value: 'canceled' },
						{ name: 'Logged Out', value: 'logged_out' },
						{ name: 'Not Found', value: 'not_found' },
						{ name: 'Rejected', value: 'rejected' },
						{ name: 'Retries Exhausted', value: 'retries_exhausted' },
					],
					default: [],
					description: 'Only tasks that ended so (none selected: every task); batches are not filtered by outcome',
				},
				{
					displayName: 'Batch ID',
					name: 'batchId',
					type: 'string',
					default: '',
					description: 'Only the tasks of this batch, or this batch (empty: any)',
				},
			],
		};
	}

	webhookMethods = {
		default: {
			// The subscription made at activation still exists for this webhook URL.
			async checkExists(this: IHookFunctions): Promise<boolean> {
				const data = this.getWorkflowStaticData('node') as TriggerStatic;
				if (!data.subscriptionId) return false;
				const answer = await call(this, 'GET', `/v1/subscriptions/${encodeURIComponent(data.subscriptionId)}`);
				if (answer.statusCode === 404) {
					delete data.subscriptionId;
					delete data.subscriptionUrl;
					return false;
				}
				if (answer.statusCode < 200 || answer.statusCode > 299) throw apiError(this, answer);
				if (answer.body.url === this.getNodeWebhookUrl('default')) return true;
				// n8n's webhook URL changed (N8N_WEBHOOK_URL): the old subscription
				// would post to nowhere; remove it before create() makes the new one.
				await call(this, 'DELETE', `/v1/subscriptions/${encodeURIComponent(data.subscriptionId)}`);
				delete data.subscriptionId;
				delete data.subscriptionUrl;
				return false;
			},
			async create(this: IHookFunctions): Promise<boolean> {
				const data = this.getWorkflowStaticData('node') as TriggerStatic;
				const url = this.getNodeWebhookUrl('default') as string;
				const body: IDataObject = { url, events: this.getNodeParameter('events', []) as string[] };
				const instances = csv(this.getNodeParameter('instances', ''));
				if (instances.length > 0) body.instances = instances;
				const sub = await callOk(this, 'POST', '/v1/subscriptions', { body });
				data.subscriptionId = String(sub.id);
				data.subscriptionUrl = url;
				return true;
			},
			async delete(this: IHookFunctions): Promise<boolean> {
				const data = this.getWorkflowStaticData('node') as TriggerStatic;
				if (data.subscriptionId) {
					const answer = await call(this, 'DELETE', `/v1/subscriptions/${encodeURIComponent(data.subscriptionId)}`);
					// 404: already gone, which is what deactivation wants.
					if (answer.statusCode !== 404 && (answer.statusCode < 200 || answer.statusCode > 299)) return false;
				}
				delete data.subscriptionId;
				delete data.subscriptionUrl;
				return true;
			},
		},
	};

	async webhook(this: IWebhookFunctions): Promise<IWebhookResponseData> {
		const req = this.getRequestObject() as unknown as {
			rawBody?: Buffer;
			readRawBody?: () => Promise<void>;
			body?: unknown;
		};
		if (!req.rawBody && req.readRawBody) await req.readRawBody();
		const headers = this.getHeaderData() as Record<string, string | undefined>;
		const credentials = await this.getCredentials('wahaqApi');
		const raw = req.rawBody ?? Buffer.from(JSON.stringify(req.body ?? {}));
		const refusal = verify(
			String(credentials.signingSecret ?? ''),
			{ id: headers['webhook-id'], timestamp: headers['webhook-timestamp'], signature: headers['webhook-signature'] },
			raw,
			Math.floor(Date.now() / 1000),
		);
		const res = this.getResponseObject();
		if (refusal !== null) {
			// 401 without a workflow run: wahaq retries it, and a forged request starts nothing.
			res.status(401).json({ error: `signature refused: ${refusal}` });
			return { noWebhookResponse: true };
		}
		const id = String(headers['webhook-id']);
		const data = this.getWorkflowStaticData('node') as TriggerStatic;
		const seen = seenBefore(`${this.getWorkflow().id}/${this.getNode().name}`, data.seen ?? [], id);
		// Assigned, not pushed: the assignment is what marks static data as changed.
		data.seen = seen.stored;
		if (seen.duplicate) {
			// A redelivery (wahaq did not see our first 2xx): answered, not run again.
			res.status(200).json({ duplicate: true });
			return { noWebhookResponse: true };
		}

		let event: IDataObject;
		try {
			event = JSON.parse(raw.toString('utf8')) as IDataObject;
		} catch {
			res.status(400).json({ error: 'the body is not JSON' });
			return { noWebhookResponse: true };
		}
		const json = toItem(event, id);
		if (!matches(this, event)) return { webhookResponse: { filtered: true } };
		return { workflowData: [[{ json }]] };
	}
}

function matches(ctx: IWebhookFunctions, event: IDataObject): boolean {
	const events = ctx.getNodeParameter('events', []) as string[];
	const instances = csv(ctx.getNodeParameter('instances', ''));
	const outcomes = ctx.getNodeParameter('outcomes', []) as string[];
	const batchId = String(ctx.getNodeParameter('batchId', '')).trim();
	const type = String(event.type ?? '');
	const d = (event.data as IDataObject) ?? {};
	if (events.length > 0 && !events.includes(type)) return false;
	if (instances.length > 0 && !instances.includes(String(d.instance ?? ''))) return false;
	if (batchId) {
		if (String(d.batch_id ?? '') !== batchId) return false;
	}
	if (type === 'task.final' && outcomes.length > 0) {
		const outcome = d.state === 'canceled' ? 'canceled' : String(d.outcome ?? '');
		if (!outcomes.includes(outcome)) return false;
	}
	return true;
}

/** The item a delivery starts the workflow with: {status, message} like the wahaq node, and the task or batch. */
export function toItem(event: IDataObject, webhookId: string): IDataObject {
	const type = String(event.type ?? '');
	const d = (event.data as IDataObject) ?? {};
	const base = { event: type, timestamp: event.timestamp, webhook_id: webhookId };
	if (type === 'batch.done') {
		const outcomes = (d.outcomes as IDataObject) ?? {};
		const counts = (d.counts as IDataObject) ?? {};
		const failed = Number(counts.dead ?? 0) + Number(counts.canceled ?? 0);
		return {
			status: failed === 0 && d.error == null ? 'success' : 'error',
			message:
				`batch ${d.batch_id} done: logged out ${Number(outcomes.logged_out ?? 0)} of ${Number(d.total ?? 0)} sessions` +
				(Number(outcomes.not_found ?? 0) > 0 ? ` (${outcomes.not_found} did not exist)` : '') +
				(failed > 0 ? `; ${failed} failed or canceled` : ''),
			...base,
			batch: d,
		};
	}
	return { ...taskStatus(d), ...base, task: d };
}
