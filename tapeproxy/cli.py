"""The `tapeproxy` command line: thin click commands that parse, call one function, print.

Errors from the library (`TapeproxyError`) become ``Error: ...`` on stderr and the error's
exit code, never a traceback.
"""

from __future__ import annotations

import sys

import click

from tapeproxy import __version__
from tapeproxy.errors import TapeproxyError

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tapeproxy")
def cli() -> None:
    """Record and replay LLM provider traffic through a mitmproxy-based proxy.

    Any program that honours HTTPS_PROXY is recorded (`record`) or served from a cassette
    (`replay`) without code changes. Cassettes are reviewable (`show`, `diff`, `stats`) and
    guarded against leaked secrets (`lint`, `install-hooks`).
    """


def main() -> None:
    """Console-script entry point: run the group, turning library errors into exit codes."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except TapeproxyError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


# ---- cassettes: show, import-vcr -------------------------------------------------------------


# ---- proxy: record, replay, serve, ca, demo --------------------------------------------------


# ---- redaction: lint, install-hooks ----------------------------------------------------------


# ---- review: diff, stats ---------------------------------------------------------------------


@cli.command("diff")
@click.argument("paths", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--git", "ref", metavar="REF", help="Compare every cassette changed since REF.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    show_default=True,
    help="markdown fits a pull-request comment; json is documented in README.",
)
@click.option(
    "--text-threshold",
    type=float,
    default=None,
    help="Similarity ratio (0..1) below which changed assistant text is drift "
    "[default: text_threshold from config, else 0.85; per-cassette diff_thresholds win].",
)
def diff_command(
    paths: tuple[str, ...], ref: str | None, fmt: str, text_threshold: float | None
) -> None:
    """Compare cassettes by meaning: OLD NEW, or --git REF against the work tree.

    Interactions are paired by request key and occurrence and reported as added, removed or
    changed. Assistant text is compared by similarity ratio, tool calls exactly; model, stop
    reason and usage changes are shown; timing-only changes are counted. Exits 1 when any
    text falls below its threshold, a tool call or a status changed; 0 otherwise.
    """
    from tapeproxy.config import load_config
    from tapeproxy.errors import BadInputError
    from tapeproxy.review import diff_git, render_diff
    from tapeproxy.review.diff import Thresholds

    if (ref is None and len(paths) != 2) or (ref is not None and paths):
        raise BadInputError("diff takes OLD NEW, or --git REF alone")
    thresholds = Thresholds.from_config(load_config(), text_threshold)
    if ref is not None:
        report = diff_git.diff_git(ref, thresholds)
    else:
        report = diff_git.diff_files(paths[0], paths[1], thresholds)
    click.echo(render_diff.render(report, fmt), nl=False)
    sys.exit(1 if report.drift else 0)


@cli.command("stats")
@click.argument("cassettes", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json is documented in README.",
)
def stats_command(cassettes: tuple[str, ...], fmt: str) -> None:
    """Summarise cassettes: traffic, errors, latency, tokens and estimated cost.

    Counts interactions by host, endpoint, model and status; error rate by status and
    provider error type; TTFB and total latency (min, mean, p50, p95, max); token usage as
    the providers reported it (streams included); and the cost a live run would have had at
    the list prices bundled in genai-prices (offline).
    """
    from tapeproxy.cassettes.store import load
    from tapeproxy.review import render_stats
    from tapeproxy.review.stats import collect

    stats = collect((path, load(path)) for path in cassettes)
    click.echo(render_stats.render(stats, fmt), nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
