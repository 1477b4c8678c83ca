import type { INodeTypeBaseDescription, IVersionedNodeType } from 'n8n-workflow';
import { VersionedNodeType } from 'n8n-workflow';

import { WahaqV1 } from './v1/WahaqV1.node';

/**
 * The wahaq node, versioned the n8n way: a change that alters what a saved
 * workflow does gets a new version class, and workflows keep the version they
 * were built with.
 */
export class Wahaq extends VersionedNodeType {
	constructor() {
		const baseDescription: INodeTypeBaseDescription = {
			displayName: 'wahaq',
			name: 'wahaq',
			icon: 'file:wahaq.svg',
			group: ['output'],
			subtitle: '={{$parameter["operation"]}}',
			description: 'Log WhatsApp (WAHA) sessions out through wahaq, follow tasks and batches, handle dead letters',
			defaultVersion: 1,
		};
		const nodeVersions: IVersionedNodeType['nodeVersions'] = {
			1: new WahaqV1(baseDescription),
		};
		super(nodeVersions, baseDescription);
	}
}
