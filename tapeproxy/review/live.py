"""Live runs: everything passes through to the providers, and the run says what it spent.

A live run that no request of reached a provider was stubbed by accident (an application wired
to a fake, a leftover ``USE_MOCK_LLM``): `LIVE_NOTHING_EXIT` says so instead of a pass. The
exchanges are captured (redacted) for the account, and kept only when a journal is asked for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tapeproxy.cassettes.model import Cassette, Interaction, new_cassette
from tapeproxy.review.stats import TOKEN_FIELDS, Stats, collect

__all__ = ["LIVE_NOTHING_EXIT", "LiveAccount", "account", "exit_code"]

LIVE_NOTHING_EXIT = 4
"""Exit code of `live` when CMD passed but no request reached a provider."""


@dataclass(frozen=True)
class LiveAccount:
    """What a live run sent and spent: exchanges answered by a provider, tokens, cost."""

    answered: int
    failed: int
    stats: Stats

    @property
    def tokens(self) -> dict[str, int]:
        """Token totals as the providers reported them (input, output, cached, ...)."""
        return {name: self.stats.tokens[name] for name in TOKEN_FIELDS}

    def summary(self) -> str:
        """A few lines for the terminal."""
        hosts = ", ".join(f"{h}: {n}" for h, n in sorted(self.stats.by_host.items()))
        lines = [f"tapeproxy live: {self.answered} request(s) reached a provider ({hosts or '-'})"]
        if self.failed:
            lines.append(f"  {self.failed} request(s) got no answer (transport errors)")
        t = self.tokens
        lines.append(
            f"  tokens: input {t['input']}, output {t['output']}, cached input "
            f"{t['cached_input']}, reasoning {t['reasoning']}"
        )
        cost = self.stats.to_json()["cost"]
        by_model = ", ".join(f"{m}: ${c:.6f}" for m, c in cost["by_model"].items())
        shown = f" ({by_model})" if by_model else ""
        lines.append(f"  cost at list prices: ${cost['total']:.6f}{shown}")
        if cost["unpriced_models"]:
            lines.append(f"  no price known for: {', '.join(cost['unpriced_models'])}")
        return "\n".join(lines)


def exit_code(cmd_code: int, live: LiveAccount) -> int:
    """CMD's code, or `LIVE_NOTHING_EXIT` when CMD passed and no request reached a provider."""
    return LIVE_NOTHING_EXIT if cmd_code == 0 and live.answered == 0 else cmd_code


def account(interactions: Iterable[Interaction]) -> LiveAccount:
    """The account of the exchanges a live run forwarded."""
    items = tuple(interactions)
    cassette: Cassette = new_cassette("live", "").model_copy(update={"interactions": items})
    answered = sum(1 for it in items if it.response is not None)
    return LiveAccount(answered, len(items) - answered, collect([("live", cassette)]))
