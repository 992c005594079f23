"""Hard-negative clean interactions for the corpus: things that look like secrets but are not
(placeholders keeping a key's prefix and length, ids, digests, base64 images, embeddings,
reasoning signatures, model names, etags, timestamps, public keys, certificates, prose).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import uuid

from tapeproxy.cassettes.model import Body, Interaction, Request, Response

__all__ = ["clean_interaction"]

_ALNUM = string.ascii_letters + string.digits
_JSON = ("content-type", "application/json")
_PROSE = (
    "The secret to a good sourdough is patience and a warm kitchen.",
    "Your API key is stored in the OPENAI_API_KEY environment variable; never commit it.",
    "Tokens are counted per request: prompt tokens plus completion tokens.",
    "Set password: <your password here> in the config, then restart the service.",
    "Use api_key=os.environ['ANTHROPIC_API_KEY'] when you build the client.",
    "Rotate credentials every 90 days, and keep the token out of logs.",
    "The key insight is that authentication and authorization are different things.",
    "Replace sk-... with your own key; the example uses sk-...ab12 as an elision.",
)
_PLACEHOLDERS = (
    lambda g: "sk-proj-" + "X" * 156,
    lambda g: "sk-ant-api03-" + "*" * 93 + "AA",
    lambda g: "AKIAIOSFODNN7EXAMPLE",
    lambda g: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    lambda g: "ghp_" + "x" * 36,
    lambda g: "<redacted:openai>",
    lambda g: "${OPENAI_API_KEY}",
    lambda g: "{{ api_key }}",
    lambda g: "REDACTED",
    lambda g: "sk-...ab12",
    lambda g: "AIza" + "0" * 35,
    lambda g: "<YOUR_API_KEY>",
    lambda g: "xoxb-" + "0" * 12 + "-" + "0" * 13 + "-" + "x" * 24,
    lambda g: "hf_" + "x" * 34,
    lambda g: "********",
)


def _r(g: random.Random, n: int, alphabet: str = _ALNUM) -> str:
    return "".join(g.choice(alphabet) for _ in range(n))


def _b64(g: random.Random, n: int) -> str:
    return base64.b64encode(bytes(g.getrandbits(8) for _ in range(n))).decode()


def _ix(
    req_body: object, resp_body: object, headers: tuple[tuple[str, str], ...] = ()
) -> Interaction:
    req = Request(
        method="POST",
        url="https://api.openai.com/v1/chat/completions",
        headers=(_JSON, *headers),
        body=Body(text=json.dumps(req_body)),
    )
    resp = Response(status=200, headers=(_JSON,), body=Body(text=json.dumps(resp_body)))
    return Interaction(
        key=hashlib.sha256(json.dumps(req_body).encode()).hexdigest(), request=req, response=resp
    )


def _ids(g: random.Random) -> dict[str, object]:
    return {
        "id": f"chatcmpl-{_r(g, 29)}",
        "system_fingerprint": f"fp_{_r(g, 10, '0123456789abcdef')}",
        "message_id": f"msg_01{_r(g, 22)}",
        "tool_use_id": f"toolu_01{_r(g, 22)}",
        "call_id": f"call_{_r(g, 24)}",
        "request_id": f"req_{_r(g, 24)}",
        "response_id": f"resp_{_r(g, 48, '0123456789abcdef')}",
        "idempotency_key": str(uuid.UUID(int=g.getrandbits(128))),
        "created": g.randint(1_600_000_000, 1_800_000_000),
        "model": g.choice(
            ["gpt-4o-2024-08-06", "claude-3-5-sonnet-20241022", "gemini-1.5-pro-002"]
        ),
    }


def clean_interaction(g: random.Random, k: int) -> tuple[str, Interaction]:
    """The k-th clean interaction (kinds cycle) and its kind."""
    kind = _KINDS[k % len(_KINDS)]
    return kind, _BUILDERS[kind](g)


def _placeholder(g: random.Random) -> Interaction:
    value = g.choice(_PLACEHOLDERS)(g)
    headers = (("authorization", f"Bearer {value}"), ("x-api-key", value))
    return _ix(
        {"api_key": value, "messages": [{"role": "user", "content": f"key: {value}"}]},
        {"ok": True},
        headers,
    )


def _ids_doc(g: random.Random) -> Interaction:
    headers = (("x-request-id", f"req_{_r(g, 24)}"), ("openai-organization", f"org-{_r(g, 24)}"))
    return _ix(
        {"model": "gpt-4o-mini", "user": str(uuid.UUID(int=g.getrandbits(128)))}, _ids(g), headers
    )


def _digests(g: random.Random) -> Interaction:
    digest = hashlib.sha256(_r(g, 20).encode()).hexdigest()
    resp = {
        "sha256": digest,
        "etag": f'W/"{digest[:32]}"',
        "key": digest,
        "updated_at": "2025-03-04T05:06:07.123Z",
        "commit": hashlib.sha1(digest.encode()).hexdigest(),
    }
    return _ix({"file_id": f"file-{_r(g, 24)}", "checksum": digest}, resp)


def _image(g: random.Random) -> Interaction:
    url = "data:image/png;base64," + _b64(g, 3000)
    msg = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
    return _ix({"model": "gpt-4o", "messages": [msg]}, _ids(g))


def _embedding(g: random.Random) -> Interaction:
    floats = [round(g.uniform(-1, 1), 6) for _ in range(64)]
    resp = {
        "data": [{"embedding": floats, "index": 0}, {"embedding": _b64(g, 1536), "index": 1}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
    return _ix({"input": ["hello", "world"], "encoding_format": "base64"}, resp)


def _signature(g: random.Random) -> Interaction:
    thinking = {
        "type": "thinking",
        "thinking": "Let me think step by step.",
        "signature": _b64(g, 256),
    }
    enc = "gAAAAAB" + base64.urlsafe_b64encode(bytes(g.getrandbits(8) for _ in range(300))).decode()
    resp = {
        "content": [thinking, {"type": "text", "text": "Done."}],
        "output": [{"type": "reasoning", "encrypted_content": enc}],
    }
    return _ix(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "thinking": {"type": "enabled", "budget_tokens": 512},
        },
        resp,
    )


def _public_keys(g: random.Random) -> Interaction:
    body = "\n".join(_r(g, 64, _ALNUM + "+/") for _ in range(5))
    pub = f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----"
    cert = f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----"
    ssh = f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{_r(g, 43, _ALNUM + '+/')} dev@laptop"
    return _ix(
        {"public_key": pub, "certificate": cert, "ssh_key": ssh},
        {"fingerprint": "SHA256:" + _r(g, 43)},
    )


def _prose(g: random.Random) -> Interaction:
    text = " ".join(g.sample(_PROSE, 3))
    return _ix(
        {"messages": [{"role": "user", "content": text}], "max_tokens": 200},
        {
            "choices": [{"message": {"content": text}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 30},
        },
    )


def _logprobs(g: random.Random) -> Interaction:
    toks = [
        {"token": w, "logprob": -g.random(), "bytes": list(w.encode())}
        for w in ("Hello", " world", "!", " tokenizer", " authentication")
    ]
    return _ix(
        {"logprobs": True, "top_logprobs": 2}, {"choices": [{"logprobs": {"content": toks}}]}
    )


def _sse(g: random.Random) -> Interaction:
    ids = _ids(g)
    events = [
        {"id": ids["id"], "choices": [{"delta": {"content": w}}]}
        for w in ("The ", "token ", "limit ", "is ", "4096.")
    ]
    text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    sizes = (
        *((float(i), len(f"data: {json.dumps(e)}\n\n")) for i, e in enumerate(events)),
        (9.0, 14),
    )
    req = Request(
        method="POST",
        url="https://api.openai.com/v1/chat/completions",
        headers=(_JSON,),
        body=Body(text='{"stream":true}'),
    )
    resp = Response(
        status=200,
        headers=(("content-type", "text/event-stream"),),
        body=Body(text=text),
        chunks=sizes,
    )
    return Interaction(key="1" * 64, request=req, response=resp)


def _query(g: random.Random) -> Interaction:
    url = f"https://generativelanguage.googleapis.com/v1beta/models/gemini-1.5-flash:generateContent?alt=sse&page_token={uuid.UUID(int=g.getrandbits(128))}&key=${{GEMINI_API_KEY}}"
    req = Request(method="POST", url=url, headers=(_JSON,), body=Body(text='{"contents":[]}'))
    return Interaction(
        key="2" * 64,
        request=req,
        response=Response(status=200, headers=(_JSON,), body=Body(text=json.dumps(_ids(g)))),
    )


_BUILDERS = {
    "placeholder": _placeholder,
    "ids": _ids_doc,
    "digests": _digests,
    "image": _image,
    "embedding": _embedding,
    "signature": _signature,
    "public-key": _public_keys,
    "prose": _prose,
    "logprobs": _logprobs,
    "sse": _sse,
    "query": _query,
}
_KINDS = tuple(_BUILDERS)
