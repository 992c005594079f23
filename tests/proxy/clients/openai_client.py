"""Run under `tapeproxy record|replay -- python openai_client.py BASE_URL`: prints what the
`openai` SDK got for a plain and a streamed chat completion and a Responses API call."""

import sys

import openai

client = openai.OpenAI(
    base_url=sys.argv[1] + "/v1", api_key="sk-test-not-a-real-key", max_retries=0
)
messages = [{"role": "user", "content": "hello from openai"}]
plain = client.chat.completions.create(model="gpt-fake", messages=messages)  # type: ignore[arg-type]
print("plain:", plain.model_dump_json())
stream = client.chat.completions.create(model="gpt-fake", messages=messages, stream=True)  # type: ignore[arg-type]
print("stream:", [c.model_dump_json() for c in stream])
response = client.responses.create(model="gpt-fake", input="hello responses")
print(
    "responses:", response.output_text, response.usage.model_dump_json() if response.usage else None
)
