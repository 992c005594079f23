"""Run under the proxy: prints what the `anthropic` SDK got, plain and streamed."""

import sys

import anthropic

client = anthropic.Anthropic(base_url=sys.argv[1], api_key="sk-ant-test-not-real", max_retries=0)
messages = [{"role": "user", "content": "hello from anthropic"}]
plain = client.messages.create(model="claude-fake", max_tokens=50, messages=messages)  # type: ignore[arg-type]
print("plain:", plain.model_dump_json())
with client.messages.stream(model="claude-fake", max_tokens=50, messages=messages) as stream:  # type: ignore[arg-type]
    print("stream:", list(stream.text_stream))
    print("final:", stream.get_final_message().model_dump_json())
