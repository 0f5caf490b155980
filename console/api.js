// Every call to the loyalty API, signed with SigV4 (aws4fetch) as an operator: locally with
// the local operator stand-in that scripts/dev's gateway hands out (config.json); on AWS with
// the temporary credentials a Cognito identity pool gives a signed-in member of the
// `operators` group. Nothing here logs request or answer bodies: they hold personal data.
import { AwsClient } from './vendor/aws4fetch.js';

let config = null;
let client = null;
let expiresAt = Infinity;
export let signedInAs = '';

export class ApiProblem extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.message || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.code = this.problem.code || '';
  }
}

export async function loadConfig() {
  const r = await fetch('config.json', { cache: 'no-store' });
  if (!r.ok) throw new Error('config.json is missing: see README "Operator console"');
  config = await r.json();
  if (config.auth === 'local') {
    client = new AwsClient({ ...config.credentials, service: 'execute-api', region: config.region });
    signedInAs = 'local';
  }
  return config;
}

export function needsSignIn() {
  return !client || Date.now() > expiresAt - 60000;
}

async function awsJson(url, target, body) {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': target },
    body: JSON.stringify(body),
  });
  const data = await r.json();
  if (!r.ok) throw new ApiProblem(r.status, { detail: data.message || data.__type });
  return data;
}

/** Cognito: user pool sign-in, then the identity pool's credentials for the operators' role. */
export async function signIn(username, password) {
  const idp = `https://cognito-idp.${config.region}.amazonaws.com/`;
  const auth = await awsJson(idp, 'AWSCognitoIdentityProviderService.InitiateAuth', {
    AuthFlow: 'USER_PASSWORD_AUTH', ClientId: config.userPoolClientId,
    AuthParameters: { USERNAME: username, PASSWORD: password },
  });
  if (!auth.AuthenticationResult) throw new ApiProblem(401, { detail: auth.ChallengeName || 'sign-in needs another step' });
  const idToken = auth.AuthenticationResult.IdToken;
  const logins = { [`cognito-idp.${config.region}.amazonaws.com/${config.userPoolId}`]: idToken };
  const identity = `https://cognito-identity.${config.region}.amazonaws.com/`;
  const { IdentityId } = await awsJson(identity, 'AWSCognitoIdentityService.GetId', { IdentityPoolId: config.identityPoolId, Logins: logins });
  const { Credentials: c } = await awsJson(identity, 'AWSCognitoIdentityService.GetCredentialsForIdentity', { IdentityId, Logins: logins });
  client = new AwsClient({ accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretKey, sessionToken: c.SessionToken, service: 'execute-api', region: config.region });
  expiresAt = c.Expiration * 1000;
  signedInAs = username;
}

/** One API call: the parsed JSON answer, or throws ApiProblem with the problem+json body. */
export async function api(method, path, body, headers = {}) {
  if (!client) throw new ApiProblem(401, { detail: 'not signed in' });
  const base = config.apiBase || location.origin;
  const init = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await client.fetch(new URL(path, base).toString(), init);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { detail: text }; }
  if (!r.ok) throw new ApiProblem(r.status, data);
  return data;
}

/** A fresh Idempotency-Key for one operator action (kept until it succeeds, so a retry replays). */
export function newKey(prefix) {
  return `${prefix}-${crypto.randomUUID()}`;
}
