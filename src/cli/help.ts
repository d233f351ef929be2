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
  omni-gateway runtime [--listen HOST:PORT] [--model DIR] [--runtime-secret S] [--node-max-sessions N]
  omni-gateway preprocess --input conversation.json --out model-input.safetensors
               [--fps F] [--video-grid-fps F] [--use-audio-in-video] [--no-generation-prompt]
  omni-gateway demo-model --out DIR [--size tiny|small] [--seed S]
  omni-gateway generate --model DIR --input conversation.json|model-input.safetensors [--max-tokens N]
               [--greedy | --temperature T --top-p P --top-k K --seed S] [--thinking on|off]
               [--thinking-budget N] [--threads N] [--json]
  omni-gateway inspect --model DIR [--json]

Commands:
  serve        HTTP + WebSocket server: /healthz, /readyz, /metrics
  runtime      a runtime node: serves the native engine (--model, or the demo checkpoint) to
               gateways over the binary runtime protocol (docs/runtime-protocol.md) on --listen
               (default 127.0.0.1:7000; port 0 picks a free one and prints it). Gateways use it
               with --runtime pool --runtime-nodes ws://HOST:PORT,...; set the same
               --runtime-secret (better OMNI_RUNTIME_SECRET) on both. Takes --model,
               --model-cache, --engine-threads, --runtime-secret, --node-max-sessions (the node
               answers server_busy beyond it), --log-level.
  preprocess   write what the gateway would hand the runtime for a conversation, as safetensors
               with the reference processor's tensor names (input_ids, attention_mask,
               input_features, feature_attention_mask, pixel_values, image_grid_thw,
               pixel_values_videos, video_grid_thw, video_second_per_grid, position_ids,
               rope_deltas). conversation.json: [{ role, content }] or { messages, tools };
               content a string or parts { type: "text", text } | { type: "audio" | "image" |
               "video", path }; paths are relative to the conversation file; roles system, user,
               assistant (optional tool_calls) and tool.
                 --fps F               video sampling rate (default 2 frames per second)
                 --video-grid-fps F    rate behind video_second_per_grid (default: the real
                                       sampling rate; 1 reproduces transformers' default)
                 --use-audio-in-video  interleave each video's soundtrack with its frames
  demo-model   write a Qwen3-Omni checkpoint of the real architecture (thinker with audio and
               vision encoders, talker, code predictor, code-to-wave) with seeded random weights
               (bf16, the real vocabulary and ids) as a Hugging Face directory (config.json,
               model.safetensors). Its words and speech are noise; it exists so the whole path
               runs on any machine. --size tiny (default, ~51 MB) or small.
  generate     run one reply on the native engine: the conversation is built exactly as
               preprocess builds it (or a model-input .safetensors is taken as is); the reply
               streams to stdout; --json prints one object at the end (prompt_tokens,
               output_token_ids, text, thinking_token_ids, timings). Greedy (the default without
               --temperature) is deterministic across runs and thread counts. --voice NAME and
               --speech-out reply.wav speak the reply (24 kHz WAV; --json adds codec_codes,
               audio_samples and first-audio timings).
  inspect      architecture, parameters (total, active per token), dtypes, memory, special ids,
               voices and tensors the engine would not load; exit 2 when unusable.

General options:
  -c, --config <file>   JSON file of settings (keys as in the table below, camelCase)
  -h, --help            show this help
  -v, --version         print the version

Settings (precedence: flag > environment > config file > default):
${rows.join('\n')}

Exit codes: 0 clean exit (including a drained shutdown), 1 runtime failure, 2 bad usage or setting.
`;
}
