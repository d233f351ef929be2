import { SETTINGS, describeAllowed, type SettingKey } from '../config/settings.js';

export function helpText(version: string): string {
  const rows = (Object.keys(SETTINGS) as SettingKey[]).map((key) => {
    const s = SETTINGS[key];
    const def = s.default === '' ? 'unset' : String(s.default);
    return `  --${s.flag} <value>\n      ${s.description}\n      env ${s.env}; ${describeAllowed(s.schema)}; default ${def}`;
  });
  return `omni-gateway ${version}: realtime gateway for omni models (Qwen3-Omni)

Usage:
  omni-gateway [serve] [options]      run the gateway (the default command)
  omni-gateway preprocess --input conversation.json --out model-input.safetensors [--no-generation-prompt]

Commands:
  serve        HTTP + WebSocket server: /healthz, /readyz, /metrics
  preprocess   write what the gateway would hand the runtime for a conversation, as safetensors
               with the reference processor's tensor names (input_ids, attention_mask,
               input_features, feature_attention_mask, pixel_values, image_grid_thw,
               position_ids, rope_deltas). conversation.json: [{ role, content }], content a
               string or parts { type: "text", text } | { type: "audio" | "image", path };
               paths are relative to the conversation file. Video parts are not supported yet.

General options:
  -c, --config <file>   JSON file of settings (keys as in the table below, camelCase)
  -h, --help            show this help
  -v, --version         print the version

Settings (precedence: flag > environment > config file > default):
${rows.join('\n')}

Exit codes: 0 clean exit (including a drained shutdown), 1 runtime failure, 2 bad usage or setting.
`;
}
