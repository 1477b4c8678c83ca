import type { INodeTypeBaseDescription, IVersionedNodeType } from 'n8n-workflow';
import { VersionedNodeType } from 'n8n-workflow';

import { WahaqTriggerV1 } from './v1/WahaqTriggerV1.node';

/** The wahaq Trigger node, versioned like the wahaq node. */
export class WahaqTrigger extends VersionedNodeType {
	constructor() {
		const baseDescription: INodeTypeBaseDescription = {
			displayName: 'wahaq Trigger',
			name: 'wahaqTrigger',
			icon: 'file:wahaq.svg',
			group: ['trigger'],
			description: 'Starts the workflow when a wahaq logout ends or a batch is done',
			defaultVersion: 1,
		};
		const nodeVersions: IVersionedNodeType['nodeVersions'] = {
			1: new WahaqTriggerV1(baseDescription),
		};
		super(nodeVersions, baseDescription);
	}
}
