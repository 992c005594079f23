"""What a response would have cost live, from the price data bundled in `genai-prices`.

Only the snapshot shipped inside the package is used (`genai_prices.calc_price` reads it;
nothing is fetched unless ``UpdatePrices`` is started, which tapeproxy never does), so the
estimate works offline and is reproducible for a given genai-prices version.
"""

from __future__ import annotations

import warnings
from decimal import Decimal
from urllib.parse import urlsplit

import genai_prices

from tapeproxy.providers.llm import Usage

__all__ = ["billed_usage", "price"]


def billed_usage(usage: Usage) -> dict[str, int]:
    """Usage in genai-prices' terms: total input (cache reads and writes included), cache
    reads, cache writes, and output with any separately reported thinking added."""
    cached = usage.cached_input_tokens or 0
    writes = usage.cache_write_tokens or 0
    total_input = usage.input_tokens or 0
    if not usage.input_includes_cached:
        total_input += cached + writes
    output = usage.output_tokens or 0
    if not usage.output_includes_reasoning:
        output += usage.reasoning_tokens or 0
    billed = {"input_tokens": total_input, "output_tokens": output}
    if cached:
        billed["cache_read_tokens"] = cached
    if writes:
        billed["cache_write_tokens"] = writes
    return billed


def price(usage: Usage, model: str, url: str) -> Decimal | None:
    """The price in USD at today's list prices, or None when genai-prices does not know the
    model. The provider is found from the request URL's host first, then from the model name
    alone, then without a gateway's ``vendor/`` prefix."""
    counts = genai_prices.Usage(**billed_usage(usage))
    origin = urlsplit(url)
    attempts: list[tuple[str, str | None]] = []
    if origin.netloc:
        attempts.append((model, f"{origin.scheme}://{origin.netloc}"))
    attempts.append((model, None))
    if "/" in model:  # a gateway name such as "moonshotai/kimi-k2"
        attempts.append((model.split("/", 1)[1], None))
    for ref, api_url in attempts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = genai_prices.calc_price(counts, ref, provider_api_url=api_url)
        except LookupError:
            continue
        return Decimal(result.total_price)
    return None
