#!/usr/bin/env bash
# Speech fixtures for the realtime conformance suite (test/realtime_conformance_*.test.ts):
# espeak-ng utterances resampled with sox to PCM16 mono WAV at 24 kHz (OpenAI dialects) and
# 16 kHz (DashScope). Re-run to regenerate; the outputs are committed (a few hundred KB).
set -euo pipefail
cd "$(dirname "$0")/../test/fixtures/realtime"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say() { # name text rates...
  local name=$1 text=$2
  shift 2
  espeak-ng -v en-us -s 165 -w "$tmp/$name.wav" "$text"
  for rate in "$@"; do
    sox "$tmp/$name.wav" -r "$rate" -c 1 -b 16 -e signed-integer "${name}_$((rate / 1000))k.wav"
  done
}
say weather "What is the weather like today?" 24000 16000
say interrupt "Wait, stop. Tell me a joke instead." 24000
