// Ids of the Qwen3-Omni special tokens (spec §3.1), with no dependencies so that fusion can use
// them without loading the tokenizer binding.

export const SPECIAL_IDS = {
  endoftext: 151643,
  imStart: 151644,
  imEnd: 151645,
  visionStart: 151652,
  visionEnd: 151653,
  imagePad: 151655,
  videoPad: 151656,
  think: 151667,
  thinkEnd: 151668,
  audioStart: 151669,
  audioEnd: 151670,
  ttsPad: 151671,
  ttsTextBos: 151672,
  ttsTextEod: 151673,
  ttsTextBosSingle: 151674,
  audioPad: 151675,
} as const;

/**
 * Tokens the Omni checkpoint adds after the Qwen3 vocabulary (which ends at `</think>` 151668), in
 * id order. Appending them in this order to the Qwen3 tokenizer gives these ids.
 */
export const OMNI_ADDED_TOKENS: readonly (readonly [string, number])[] = [
  ['<|audio_start|>', 151669],
  ['<|audio_end|>', 151670],
  ['<tts_pad>', 151671],
  ['<tts_text_bos>', 151672],
  ['<tts_text_eod>', 151673],
  ['<tts_text_bos_single>', 151674],
  ['<|audio_pad|>', 151675],
];

/** Ordinary BPE ids the model code depends on (single tokens right after `<|im_start|>`). */
export const ROLE_IDS = { system: 8948, user: 872, assistant: 77091, newline: 198 } as const;
