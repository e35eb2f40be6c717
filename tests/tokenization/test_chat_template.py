"""Chat templates against transformers: ChatML with generation masks, a Llama-3 style template with tools."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tokenization_fixtures import assert_same_encoding  # noqa: E402

LLAMA3 = """{{- bos_token }}
{%- if custom_tools is defined %}{%- set tools = custom_tools %}{%- endif %}
{%- if not date_string is defined %}{%- set date_string = strftime_now("%d %b %Y") %}{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if tools is not none %}{{- "Environment: ipython\\n" }}{%- endif %}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if documents is not none %}
    {%- for doc in documents %}{{- "Document " + doc.title + ": " + doc.text + "\\n" }}{%- endfor %}
{%- endif %}
{%- if tools is not none %}
    {{- "You have access to these functions:\\n" }}
    {%- for t in tools %}{{- t | tojson(indent=4) }}{{- "\\n\\n" }}{%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {%- if message.role not in ['user', 'assistant', 'tool', 'ipython'] %}
        {{- raise_exception("Unknown role: " + message.role) }}
    {%- endif %}
    {%- if 'tool_calls' in message %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
        {%- for call in message.tool_calls %}
            {{- '{"name": "' + call.function.name + '", "parameters": ' + call.function.arguments | tojson + '}' }}
        {%- endfor %}
        {{- "<|eot_id|>" }}
    {%- elif message.role == 'assistant' %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
        {%- generation %}{{- message['content'] | trim + '<|eot_id|>' }}{%- endgeneration %}
    {%- else %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}
"""

CHAT = [
    {"role": "system", "content": "You are helpful. Café 日本 😀"},
    {"role": "user", "content": "Hi there!"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "What is the weather in Paris?", "extra": None},
]
TOOL_CHAT = [
    *CHAT,
    {
        "role": "assistant",
        "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
        ],
    },
    {"role": "tool", "content": "22 degrees"},
    {"role": "assistant", "content": "It is 22 degrees."},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def get_time(timezone: str, precise: bool = False) -> str:
    """Get the current time.

    Args:
        timezone: The timezone, e.g. Europe/Paris.
        precise: Whether to include seconds.
    """
    return ""


@pytest.fixture(scope="module")
def llama3_pair(load_pair):
    ours, theirs = load_pair("bytelevel_chatml")
    specials = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    import transformers

    from pretrained import AutoTokenizer

    ours = AutoTokenizer.from_pretrained(ours.name_or_path)
    theirs = transformers.AutoTokenizer.from_pretrained(theirs.name_or_path)
    for tok in (ours, theirs):
        tok.add_special_tokens({"bos_token": specials[0], "extra_special_tokens": specials[1:]})
        tok.chat_template = LLAMA3
    return ours, theirs


def test_chatml_generation_masks(load_pair):
    ours, theirs = load_pair("bytelevel_chatml")
    for kwargs in (
        {"tokenize": False},
        {"tokenize": False, "add_generation_prompt": True},
        {"return_dict": False},
        {"return_dict": True, "return_assistant_tokens_mask": True},
        {"return_assistant_tokens_mask": True, "return_tensors": "pt"},
        {"continue_final_message": True, "tokenize": False},
    ):
        chat = CHAT[:3] if kwargs.get("continue_final_message") else CHAT
        a, b = ours.apply_chat_template(chat, **kwargs), theirs.apply_chat_template(chat, **kwargs)
        if hasattr(b, "keys"):
            assert_same_encoding(a, b, kwargs)
        else:
            assert a == b, kwargs
    masks = ours.apply_chat_template(CHAT, return_assistant_tokens_mask=True)
    assert 0 < sum(masks["assistant_masks"]) < len(masks["input_ids"])
    batch = [CHAT, CHAT[:2]]
    kwargs = {"padding": True, "return_assistant_tokens_mask": True, "return_tensors": "np"}
    assert_same_encoding(
        ours.apply_chat_template(batch, **kwargs), theirs.apply_chat_template(batch, **kwargs)
    )


def test_llama3_template_with_tools_and_documents(llama3_pair):
    ours, theirs = llama3_pair
    docs = [{"title": "Paris", "text": "Capital of France."}]
    for kwargs in (
        {"tools": TOOLS, "tokenize": False, "date_string": "26 Jul 2024"},
        {"tools": [get_time], "tokenize": False, "date_string": "26 Jul 2024"},
        {"documents": docs, "add_generation_prompt": True, "date_string": "1 Jan 2025"},
        {"tools": TOOLS, "return_assistant_tokens_mask": True, "date_string": "26 Jul 2024"},
        {"tools": TOOLS, "tokenize": False},  # strftime_now
    ):
        a = ours.apply_chat_template(TOOL_CHAT, **kwargs)
        b = theirs.apply_chat_template(TOOL_CHAT, **kwargs)
        if hasattr(b, "keys"):
            assert_same_encoding(a, b, kwargs)
        else:
            assert a == b, kwargs
    rendered = ours.apply_chat_template(TOOL_CHAT, tools=[get_time], tokenize=False, date_string="x")
    assert '"timezone"' in rendered and "Europe/Paris" in rendered
    for tok in (ours, theirs):
        with pytest.raises(Exception, match="Unknown role: robot"):
            tok.apply_chat_template([{"role": "robot", "content": "beep"}])


def test_chat_template_errors_and_sandbox(load_pair):
    ours, theirs = load_pair("bytelevel_chatml")
    for call in (
        lambda t: t.apply_chat_template([]),
        lambda t: t.apply_chat_template(CHAT, add_generation_prompt=True, continue_final_message=True),
        lambda t: t.apply_chat_template(CHAT, tokenize=False, return_assistant_tokens_mask=True),
        lambda t: t.apply_chat_template(CHAT, chat_template="{{ messages.__class__.__mro__ }}"),
        lambda t: t.apply_chat_template(CHAT, chat_template="{{ ''.__class__.__subclasses__() }}"),
        lambda t: t.apply_chat_template(CHAT, chat_template="{% set ns = namespace(_x=1) %}"),
        lambda t: t.apply_chat_template(["not a dict"]),
    ):
        errors = []
        for tok in (ours, theirs):
            try:
                call(tok)
                errors.append(None)
            except Exception as error:
                errors.append(type(error))
        assert errors[0] is not None and errors[0] == errors[1], errors


def test_template_sources_and_saving(load_pair, tmp_path):
    import transformers

    from pretrained import AutoTokenizer

    ours, _ = load_pair("bytelevel_chatml")
    tok = AutoTokenizer.from_pretrained(ours.name_or_path)
    tok.chat_template = {"default": "{{ messages[0]['content'] }}", "tool_use": "TOOLS {{ tools | length }}"}
    tok.save_pretrained(tmp_path / "multi")
    assert (tmp_path / "multi" / "additional_chat_templates" / "tool_use.jinja").is_file()
    for reloaded in (
        AutoTokenizer.from_pretrained(tmp_path / "multi"),
        transformers.AutoTokenizer.from_pretrained(tmp_path / "multi"),
    ):
        assert reloaded.chat_template == tok.chat_template
        assert reloaded.apply_chat_template(CHAT, tokenize=False) == "You are helpful. Café 日本 😀"
        assert reloaded.apply_chat_template(CHAT, tools=TOOLS, tokenize=False) == "TOOLS 1"
    tok.chat_template = "{{ bos_token }}{{ messages | length }}"
    tok.save_pretrained(tmp_path / "legacy", save_jinja_files=False)
    assert not (tmp_path / "legacy" / "chat_template.jinja").exists()
    for reloaded in (
        AutoTokenizer.from_pretrained(tmp_path / "legacy"),
        transformers.AutoTokenizer.from_pretrained(tmp_path / "legacy"),
    ):
        assert reloaded.chat_template == tok.chat_template
    with pytest.raises(ValueError, match="tokenizer.chat_template is not set"):
        tok.chat_template = None
        tok.apply_chat_template(CHAT)
