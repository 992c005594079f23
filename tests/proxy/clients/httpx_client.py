"""Run under the proxy: a plain httpx POST and a streamed one, printed byte for byte."""

import sys

import httpx

url = sys.argv[1] + "/v1/chat/completions"
with httpx.Client(timeout=30) as client:
    r = client.post(url, json={"model": "m", "messages": [{"role": "user", "content": "httpx"}]})
    print(r.status_code, r.headers.get("content-type"), r.content)
    with client.stream("POST", url, json={"model": "m", "stream": True, "messages": []}) as s:
        print(s.status_code, b"".join(s.iter_bytes()))
