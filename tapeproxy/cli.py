"""The `tapeproxy` command line: thin click commands that parse, call one function, print.

Errors from the library (`TapeproxyError`) become ``Error: ...`` on stderr and the error's
exit code, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

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


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif"]),
    default="text",
    help="text for people, json for JSON Lines (one finding per line), sarif for code scanning.",
)
@click.option("--reveal", is_flag=True, help="Show whole secrets (json: a `secret` field).")
@click.option("--staged", is_flag=True, help="Lint the files staged for commit (git index).")
@click.option(
    "--push-range",
    metavar="RANGE",
    help="Lint blobs changed by the commits in RANGE (OLD..NEW, or NEW --not --remotes).",
)
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="Config file.")
def lint(
    paths: tuple[Path, ...],
    fmt: str,
    reveal: bool,
    staged: bool,
    push_range: str | None,
    config_file: Path | None,
) -> None:
    """Scan cassettes (and JSON, YAML, text files) for leaked secrets.

    PATHS are files or directories (walked recursively; test folders are not skipped). Exit
    status: 0 clean, 1 findings, 2 bad input. Allow-list a finding by adding its fingerprint
    (sha256 of the secret) to `allowlist` in [tool.tapeproxy].
    """
    from tapeproxy.redaction.commands import run_lint

    def bar(total: int) -> Any:
        return click.progressbar(length=total, label="Linting", file=sys.stderr)

    progress = bar if sys.stderr.isatty() else None
    output, found = run_lint(paths, fmt, reveal, staged, push_range, config_file, progress)
    click.echo(output, nl=False)
    sys.exit(1 if found else 0)


@cli.command("install-hooks")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="Config file.")
def install_hooks(config_file: Path | None) -> None:
    """Install the git pre-push secret gate and the `tapeproxy show` diff driver.

    An existing pre-push hook is kept and still runs first. Adds
    `**/cassettes/**/*.json.zst diff=tapeproxy` (and the configured cassette directory) to
    .gitattributes and sets diff.tapeproxy.textconv in the repository's git config.
    """
    from tapeproxy.redaction.commands import run_install_hooks

    click.echo(run_install_hooks(config_file))


# ---- review: diff, stats ---------------------------------------------------------------------


if __name__ == "__main__":  # pragma: no cover
    main()
