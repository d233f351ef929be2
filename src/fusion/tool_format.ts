// Tool use in the Qwen3 chat template (spec §3.2: Qwen3-Omni follows the Qwen3 `# Tools` system
// block): the tool-definition block, `<tool_call>` bodies and validation of both. template.ts lays
// them out; the text here is the template's, byte for byte.
import { FusionError } from './errors.js';
import { pyJsonDumps, type JsonObject } from './tool_json.js';

/** Added (not special) Qwen3 tokens around tool calls and responses (spec §3.1). */
export const TOOL_IDS = {
  toolCall: 151657,
  toolCallEnd: 151658,
  toolResponse: 151665,
  toolResponseEnd: 151666,
} as const;

export const TOOL_TOKEN_TEXT: ReadonlyMap<number, string> = new Map([
  [TOOL_IDS.toolCall, '<tool_call>'],
  [TOOL_IDS.toolCallEnd, '</tool_call>'],
  [TOOL_IDS.toolResponse, '<tool_response>'],
  [TOOL_IDS.toolResponseEnd, '</tool_response>'],
]);

/**
 * A tool definition, rendered with `tojson` as given: usually the OpenAI form
 * `{type: 'function', function: {name, description, parameters}}`, or the flat `{name, …}`.
 */
export type ToolDefinition = JsonObject;

export interface ToolFunctionCall {
  name: string;
  /** A string is inserted as it is (normally JSON text); an object is rendered with `tojson`. */
  arguments: string | JsonObject;
}

/** An assistant tool call: the OpenAI form (`id` and `type` are not rendered) or the bare function. */
export type ToolCall = { id?: string; type?: string; function: ToolFunctionCall } | ToolFunctionCall;

/** Text before the first tool line (after any system content), between `system\n` and the lines. */
export const TOOLS_HEAD =
  '# Tools\n\nYou may call one or more functions to assist with the user query.\n\n' +
  'You are provided with function signatures within <tools></tools> XML tags:\n<tools>';
/** Text after the tool lines, up to `<|im_end|>`; holds `<tool_call>` tokens. */
export const TOOLS_TAIL =
  '\n</tools>\n\nFor each function call, return a json object with function name and arguments within ' +
  '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>';

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** `tool | tojson` for each tool, after checking that it is a JSON object naming its function. */
export function toolLines(tools: unknown): string[] {
  if (!Array.isArray(tools)) throw new FusionError('tool_invalid', 'tools must be a list of objects', 'tools');
  return tools.map((tool: unknown, i) => {
    const param = `tools[${i}]`;
    if (!isObject(tool)) throw new FusionError('tool_invalid', 'a tool must be an object', param);
    const hasFunction = tool.function !== undefined;
    const fn = hasFunction ? tool.function : tool;
    const fnParam = hasFunction ? `${param}.function` : param;
    if (!isObject(fn)) throw new FusionError('tool_invalid', 'function must be an object', fnParam);
    if (typeof fn.name !== 'string' || fn.name.length === 0) {
      throw new FusionError('tool_invalid', 'a tool must name its function (a non-empty string)', `${fnParam}.name`);
    }
    return pyJsonDumps(tool, 'tool_invalid', param);
  });
}

/**
 * The body between `<tool_call>` and `</tool_call>`: `\n{"name": "…", "arguments": …}\n`, the name
 * inserted raw and string arguments raw, as the template does.
 */
export function toolCallBody(call: unknown, param: string): string {
  if (!isObject(call)) throw new FusionError('tool_call_invalid', 'a tool call must be an object', param);
  // the template's `{% if tool_call.function %}`: a present function object wins
  const wrapped = call.function !== undefined && call.function !== null;
  const fn = wrapped ? call.function : call;
  const fnParam = wrapped ? `${param}.function` : param;
  if (!isObject(fn)) throw new FusionError('tool_call_invalid', 'function must be an object', fnParam);
  if (typeof fn.name !== 'string' || fn.name.length === 0) {
    throw new FusionError('tool_call_invalid', 'a tool call must name its function (a non-empty string)', `${fnParam}.name`);
  }
  const args = fn.arguments;
  let argsText: string;
  if (typeof args === 'string') argsText = args;
  else if (isObject(args)) argsText = pyJsonDumps(args, 'tool_call_invalid', `${fnParam}.arguments`);
  else {
    throw new FusionError('tool_call_invalid', 'arguments must be a JSON string or an object', `${fnParam}.arguments`);
  }
  return `\n{"name": "${fn.name}", "arguments": ${argsText}}\n`;
}
