// Test doubles: a real loopback HTTP server standing in for wahaq, and small
// fakes of n8n's IExecuteFunctions / IHookFunctions / IWebhookFunctions that
// send real HTTP requests the way n8n's httpRequestWithAuthentication does
// (the credential's Authorization header, qs, a JSON body, ignoreHttpStatusErrors,
// returnFullResponse).
'use strict';
const http = require('node:http');

/**
 * startWahaq(routes): a server on 127.0.0.1 answering with routes[`${method} ${path}`]
 * (a function (req, body, url) => [status, json] or a fixed [status, json]); 404 otherwise.
 * Every request is recorded in server.requests as {method, path, query, headers, body}.
 */
async function startWahaq(routes) {
  const requests = [];
  const server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      const url = new URL(req.url, 'http://x');
      const body = data ? JSON.parse(data) : undefined;
      const rec = { method: req.method, path: url.pathname, query: Object.fromEntries(url.searchParams), headers: req.headers, body };
      requests.push(rec);
      const route = routes[`${req.method} ${url.pathname}`];
      let [status, json] = [404, { title: 'Not Found', status: 404, detail: `no route ${req.method} ${url.pathname}` }];
      if (typeof route === 'function') [status, json] = route(rec);
      else if (route) [status, json] = route;
      // wahaq answers errors as problem+json: the node must parse them either way.
      res.writeHead(status, { 'Content-Type': status >= 400 ? 'application/problem+json' : 'application/json' });
      res.end(JSON.stringify(json));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}`, requests, close: () => new Promise((r) => server.close(r)) };
}

/** The request n8n's helpers send for a credential of type wahaqApi. */
async function httpRequestWithAuthentication(credentials, credentialType, opts) {
  if (credentialType !== 'wahaqApi') throw new Error(`unexpected credential type ${credentialType}`);
  const url = new URL(opts.url);
  for (const [k, v] of Object.entries(opts.qs ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
  const headers = { ...(opts.headers ?? {}), Authorization: `Bearer ${credentials.token}` };
  let body;
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(url, { method: opts.method, headers, body, signal: AbortSignal.timeout(opts.timeout ?? 30000) });
  const text = await res.text();
  if (!opts.ignoreHttpStatusErrors && res.status >= 400) throw new Error(`HTTP ${res.status}`);
  if (!opts.returnFullResponse) throw new Error('the nodes always ask for the full response');
  // n8n parses application/json only; a problem+json body stays a string.
  const isJson = (res.headers.get('content-type') ?? '').startsWith('application/json');
  return { statusCode: res.status, headers: Object.fromEntries(res.headers), body: isJson ? JSON.parse(text) : text };
}

const NODE = { id: 'node-1111', name: 'wahaq', type: 'n8n-nodes-wahaq.wahaq', typeVersion: 1, position: [0, 0], parameters: {} };

/**
 * fakeExecute({credentials, params, items, executionId, continueOnFail}): an
 * IExecuteFunctions. params maps a parameter name to a value, or to a function
 * of the item index (an expression evaluated per item).
 */
function fakeExecute({ credentials, params, items = [{ json: {} }], executionId = 'exec-1', continueOnFail = false }) {
  const ctx = {
    getNodeParameter(name, i, fallback) {
      const v = params[name];
      if (v === undefined) {
        if (arguments.length >= 3) return fallback;
        throw new Error(`no parameter ${name}`);
      }
      return typeof v === 'function' ? v(i) : v;
    },
    getInputData: () => items,
    getCredentials: async (type) => {
      if (type !== 'wahaqApi') throw new Error(`unexpected credential ${type}`);
      return credentials;
    },
    getNode: () => NODE,
    getExecutionId: () => executionId,
    continueOnFail: () => continueOnFail,
    helpers: {
      httpRequestWithAuthentication(type, opts) {
        return httpRequestWithAuthentication(credentials, type, opts);
      },
    },
  };
  return ctx;
}

/** fakeHook({credentials, params, webhookUrl, staticData}): an IHookFunctions. */
function fakeHook({ credentials, params, webhookUrl, staticData = {} }) {
  return {
    getNodeParameter: (name, fallback) => (params[name] !== undefined ? params[name] : fallback),
    getCredentials: async () => credentials,
    getNode: () => ({ ...NODE, name: 'wahaq Trigger' }),
    getNodeWebhookUrl: () => webhookUrl,
    getWorkflowStaticData: () => staticData,
    helpers: {
      httpRequestWithAuthentication(type, opts) {
        return httpRequestWithAuthentication(credentials, type, opts);
      },
    },
  };
}

/**
 * fakeWebhook({credentials, params, headers, rawBody, staticData}): an
 * IWebhookFunctions for one delivery; the response's status and body are
 * recorded in ctx.response.
 */
function fakeWebhook({ credentials, params, headers, rawBody, staticData = {}, workflowId = 'wf-1' }) {
  const response = { status: 200, body: undefined };
  const res = {
    status(code) {
      response.status = code;
      return res;
    },
    json(body) {
      response.body = body;
      return res;
    },
  };
  return {
    response,
    getRequestObject: () => ({ rawBody: Buffer.from(rawBody), body: JSON.parse(rawBody) }),
    getResponseObject: () => res,
    getHeaderData: () => headers,
    getNodeParameter: (name, fallback) => (params[name] !== undefined ? params[name] : fallback),
    getCredentials: async () => credentials,
    getNode: () => ({ ...NODE, name: 'wahaq Trigger' }),
    getWorkflowStaticData: () => staticData,
    getWorkflow: () => ({ id: workflowId }),
  };
}

module.exports = { startWahaq, fakeExecute, fakeHook, fakeWebhook };
