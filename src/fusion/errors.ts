// Errors raised while turning a conversation into model input. Same pattern as codecs/errors.ts:
// a stable code from this catalogue, a message about the input, and the offending field.

export const FUSION_ERROR_CODES = [
  // a media grid that no processor can have produced (non-positive, or h/w not divisible by merge)
  'media_grid_invalid',
  // audio with no mel frames yields no audio token; get_rope_index cannot place it
  'audio_frames_invalid',
  'second_per_grid_invalid',
  // media marker or pad ids inside a text segment would shift every later placeholder
  'text_contains_media_token',
  'message_invalid',
  // a tool definition that is not a JSON object naming its function, or holds non-JSON data
  'tool_invalid',
  // an assistant tool call without a function name, or with arguments neither a string nor an object
  'tool_call_invalid',
  // a token-id sequence whose media markers disagree with the media lists given with it
  'media_count_mismatch',
  // a thinking setting outside what the policy allows (budget not a positive integer, above the cap)
  'thinking_budget_invalid',
] as const;

export type FusionErrorCode = (typeof FUSION_ERROR_CODES)[number];

export class FusionError extends Error {
  constructor(
    readonly code: FusionErrorCode,
    message: string,
    /** The offending field, e.g. `grid`, `frames`, `messages[2].content`. */
    readonly param?: string,
  ) {
    super(message);
    this.name = 'FusionError';
  }
}
