// Schema failures as OpenAI-style 400s: one error naming the field as clients write it
// (`messages[1].content[0].image_url.url`), with OpenAI's codes (`missing_required_parameter`,
// `invalid_type`, `invalid_value`). Serves both the route's validator (Fastify's ajv) and the
// per-message TypeBox checks; their error objects share instancePath/keyword/params/message.
import type { TSchema } from 'typebox';
import { Value } from 'typebox/value';
import type { ChatError} from './errors.js';
import { invalidRequest } from './errors.js';

export interface SchemaIssue {
  instancePath: string;
  keyword: string;
  params?: Record<string, unknown> | object;
  message?: string;
}

/** `/messages/0/content` under `prefix` -> `prefix.messages[0].content`. */
export function paramOf(instancePath: string, prefix = ''): string {
  let out = prefix;
  for (const seg of instancePath.split('/').filter(Boolean)) {
    const key = seg.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(key) ? `[${key}]` : out ? `.${key}` : key;
  }
  return out;
}

function missingProperty(params: Record<string, unknown>): string | undefined {
  if (typeof params.missingProperty === 'string') return params.missingProperty;
  const list = params.requiredProperties;
  return Array.isArray(list) && typeof list[0] === 'string' ? list[0] : undefined;
}

/** The one error to report for a failed validation. */
export function issueToError(issues: readonly SchemaIssue[], prefix = ''): ChatError {
  const required = issues.find((i) => i.keyword === 'required');
  if (required) {
    const field = missingProperty((required.params ?? {}) as Record<string, unknown>);
    const param = paramOf(required.instancePath, prefix);
    const full = field ? (param ? `${param}.${field}` : field) : param;
    return invalidRequest('missing_required_parameter', `Missing required parameter: '${full}'.`, full || null);
  }
  // A union reports each branch and then itself; say which types would have been accepted.
  const last = issues[issues.length - 1];
  if (last && (last.keyword === 'anyOf' || last.keyword === 'oneOf')) {
    // A branch of the right type that failed inside (e.g. `tools` an array, one tool bad): report that.
    const deeper = issues.filter((i) => i.instancePath.startsWith(`${last.instancePath}/`));
    if (deeper.length > 0) return issueToError(deeper, prefix);
    const types = issues
      .filter((i) => i.instancePath === last.instancePath && i.keyword === 'type')
      .map((i) => String((i.params as { type?: unknown }).type));
    const values = issues
      .filter((i) => i.instancePath === last.instancePath && (i.keyword === 'const' || i.keyword === 'enum'))
      .flatMap((i) => {
        const p = i.params as { allowedValue?: unknown; allowedValues?: unknown };
        return Array.isArray(p.allowedValues) ? (p.allowedValues as unknown[]) : [p.allowedValue];
      })
      .map((v) => JSON.stringify(v));
    const param = paramOf(last.instancePath, prefix);
    const wanted = [...new Set([...values, ...types])].join(' or ');
    return invalidRequest(values.length > 0 ? 'invalid_value' : 'invalid_type', `Invalid value for '${param}': expected ${wanted || 'another value'}.`, param);
  }
  const first = issues[0];
  if (!first) return invalidRequest('invalid_value', 'Invalid request.', prefix || null);
  const param = paramOf(first.instancePath, prefix);
  if (!param) return invalidRequest('invalid_type', 'The request body must be a JSON object.', null);
  if (first.keyword === 'additionalProperties') {
    const extra = (first.params as { additionalProperty?: unknown; additionalProperties?: unknown[] }).additionalProperty ?? (first.params as { additionalProperties?: unknown[] }).additionalProperties?.[0];
    const full = param ? `${param}.${String(extra)}` : String(extra);
    return invalidRequest('unknown_parameter', `Unknown parameter: '${full}'.`, full);
  }
  const code = first.keyword === 'type' ? 'invalid_type' : 'invalid_value';
  return invalidRequest(code, `Invalid value for '${param}': ${first.message ?? 'not accepted'}.`, param || null);
}

/** Checks `value` against a TypeBox schema; throws the ChatError of its first problem. */
export function checkSchema<T extends TSchema>(schema: T, value: unknown, prefix: string): void {
  if (Value.Check(schema, value)) return;
  throw issueToError(Value.Errors(schema, value), prefix);
}
