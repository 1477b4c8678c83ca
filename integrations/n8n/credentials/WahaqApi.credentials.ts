import type {
	IAuthenticateGeneric,
	ICredentialTestRequest,
	ICredentialType,
	INodeProperties,
} from 'n8n-workflow';

/**
 * The wahaq API credential: where `wahaq serve` listens, an API token (an
 * `enqueue` token is enough for the wahaq node; the trigger needs `operate` to
 * manage its subscription) and the secret wahaq signs deliveries with
 * (WAHAQ_CALLBACK_SECRET), which the trigger checks.
 */
export class WahaqApi implements ICredentialType {
	name = 'wahaqApi';

	displayName = 'wahaq API';

	icon = 'file:../icons/wahaq.svg' as const;

	documentationUrl = 'https://github.com/wahaq/wahaq/blob/main/docs/n8n.md';

	properties: INodeProperties[] = [
		{
			displayName: 'Base URL',
			name: 'baseUrl',
			type: 'string',
			default: 'http://wahaq:8080',
			placeholder: 'http://wahaq:8080',
			description: 'Where wahaq serve listens, as n8n reaches it, without a trailing slash',
			required: true,
		},
		{
			displayName: 'API Token',
			name: 'token',
			type: 'string',
			typeOptions: { password: true },
			default: '',
			description:
				'A token of WAHAQ_API_TOKENS or of the tokens file. The wahaq node needs the enqueue role; the trigger needs operate (it creates and deletes its subscription).',
			required: true,
		},
		{
			displayName: 'Signing Secret',
			name: 'signingSecret',
			type: 'string',
			typeOptions: { password: true },
			default: '',
			placeholder: 'whsec_…',
			description:
				"wahaq's WAHAQ_CALLBACK_SECRET (whsec_…). Only the trigger uses it: it verifies the signature of every delivery.",
		},
	];

	authenticate: IAuthenticateGeneric = {
		type: 'generic',
		properties: {
			headers: {
				Authorization: '=Bearer {{$credentials.token}}',
			},
		},
	};

	// An authenticated read that every role may do: a wrong token answers 401.
	test: ICredentialTestRequest = {
		request: {
			baseURL: '={{$credentials.baseUrl.replace(/\\/+$/, "")}}',
			url: '/v1/dlq',
			qs: { limit: 1 },
			method: 'GET',
		},
	};
}
