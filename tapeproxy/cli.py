"""The `tapeproxy` command line: thin click commands that parse, call one function, print.

Errors from the library (`TapeproxyError`) become ``Error: ...`` on stderr and the error's
exit code, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

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


@cli.command()
@click.argument("cassette", type=click.Path(dir_okay=False, path_type=Path))
def show(cassette: Path) -> None:
    """Print CASSETTE (a .json.zst file) as stable, readable text.

    Request lines, the headers that take part in the key, JSON bodies pretty-printed, streamed
    bodies one event a line, timings rounded. The output depends only on the cassette, so it
    works as a git textconv driver (`tapeproxy install-hooks` sets that up).
    """
    from tapeproxy.review.show import show_file

    # Bytes, not click.echo: a textconv driver must print UTF-8 whatever the locale says.
    sys.stdout.buffer.write(show_file(cassette).encode("utf-8"))
    sys.stdout.flush()


@cli.command("import-vcr")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the converted cassettes, written as <stem>.json.zst (created if missing).",
)
def import_vcr(files: tuple[Path, ...], out_dir: Path) -> None:
    """Convert vcrpy / pytest-recording YAML cassettes (FILES) into tapeproxy cassettes.

    Bodies are stored decoded (gzip undone, Content-Encoding dropped), credentials redacted,
    keys computed with the default match rules. Streamed bodies get one chunk per event at
    offset 0, since vcrpy records no timing. Every file is converted before anything is
    written: one unreadable file writes nothing and exits with status 2.
    """
    from tapeproxy.cassettes.vcr import import_vcr as convert

    results = convert(files, out_dir)
    for r in results:
        state = "written" if r.written else "unchanged"
        click.echo(f"{r.source} -> {r.target} ({r.interactions} interaction(s), {state})")
    total = sum(r.interactions for r in results)
    click.echo(f"Imported {len(results)} file(s), {total} interaction(s) into {out_dir}")


# ---- proxy: record, replay, serve, ca, demo --------------------------------------------------


# ---- redaction: lint, install-hooks ----------------------------------------------------------


# ---- review: diff, stats ---------------------------------------------------------------------


if __name__ == "__main__":  # pragma: no cover
    main()
