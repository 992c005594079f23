"""Run under the proxy: a plain `requests` POST and a streamed one."""

import sys

import requests

url = sys.argv[1] + "/v1/chat/completions"
r = requests.post(
    url, json={"model": "m", "messages": [{"role": "user", "content": "req"}]}, timeout=30
)
print(r.status_code, r.json())
s = requests.post(url, json={"model": "m", "stream": True, "messages": []}, stream=True, timeout=30)
print(s.status_code, [line for line in s.iter_lines() if line])
