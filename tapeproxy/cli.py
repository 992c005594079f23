"""The `tapeproxy` command line: thin click commands that parse, call one function, print.

Errors from the library (`TapeproxyError`) become ``Error: ...`` on stderr and the error's
exit code, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
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


def _proxy_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by record, replay and serve (each also TAPEPROXY_<KEY> and config)."""
    options = [
        click.option("--cassette", help="Cassette file (.json.zst)."),
        click.option(
            "--no-proxy",
            "no_proxy",
            help="Hosts CMD reaches directly [default: localhost,127.0.0.1,::1]; '' sends "
            "everything through the proxy.",
        ),
        click.option("--upstream-ca", help="Also trust this CA file for upstream servers."),
        click.option(
            "--insecure-upstream",
            is_flag=True,
            default=None,
            help="Do not verify upstream certificates (never the default).",
        ),
        click.option(
            "--confdir", help="Where the proxy's CA lives [default: ~/.config/tapeproxy]."
        ),
        click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False, exists=True),
            help="Config file (default: nearest tapeproxy.toml or pyproject.toml).",
        ),
        click.option("--hosts", help="Record only these hosts (comma-separated); others pass."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _resolve(
    mode_default: str, listen_default: str = "127.0.0.1:0", **flags: Any
) -> tuple[Any, str]:
    from pathlib import Path

    from tapeproxy.config import load_config, setting
    from tapeproxy.proxy.settings import DEFAULT_NO_PROXY, build_config

    path = flags.pop("config_file", None)
    config = load_config(Path(path) if path else None)
    no_proxy = setting("no_proxy", flags.pop("no_proxy", None), config, DEFAULT_NO_PROXY)
    built = build_config(flags, config, mode_default, listen_default=listen_default)  # type: ignore[arg-type]
    return built, str(no_proxy)


@cli.command(context_settings={"ignore_unknown_options": True})
@_proxy_options
@click.option(
    "--mode", type=click.Choice(["all", "new_episodes", "once"]), help="Record mode [default: all]."
)
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED, required=True)
def record(cmd: tuple[str, ...], **flags: Any) -> None:
    """Run CMD through the proxy and record its traffic: tapeproxy record -- CMD ARGS...

    Exits with CMD's exit code.
    """
    from tapeproxy.proxy.run import run_command

    config, no_proxy = _resolve("all", **flags)
    sys.exit(run_command(config, cmd, no_proxy))


@cli.command(context_settings={"ignore_unknown_options": True})
@_proxy_options
@click.option("--latency", help="recorded (default), none, or a factor such as x0.5.")
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED, required=True)
def replay(cmd: tuple[str, ...], **flags: Any) -> None:
    """Run CMD against the cassette, never the network: tapeproxy replay -- CMD ARGS...

    Exits with CMD's exit code, or 3 when CMD passed but some requests had no recorded answer.
    """
    from tapeproxy.proxy.run import run_command

    config, no_proxy = _resolve("none", mode="none", **flags)
    sys.exit(run_command(config, cmd, no_proxy))


@cli.command()
@_proxy_options
@click.option(
    "--mode",
    type=click.Choice(["none", "once", "new_episodes", "all"]),
    help="Record mode [default: none, i.e. replay only].",
)
@click.option("--listen", help="Address to listen on [default: 127.0.0.1:8080].")
@click.option("--latency", help="recorded (default), none, or a factor such as x0.5.")
def serve(**flags: Any) -> None:
    """Run the proxy until Ctrl-C or SIGTERM, for clients you start yourself."""
    from tapeproxy.proxy.run import serve_forever

    config, no_proxy = _resolve("none", listen_default="127.0.0.1:8080", **flags)
    sys.exit(serve_forever(config, no_proxy))


@cli.command()
@click.option("--confdir", help="Where the proxy's CA lives [default: ~/.config/tapeproxy].")
def ca(confdir: str | None) -> None:
    """Print the path of the CA certificate clients must trust (created if missing)."""
    from pathlib import Path

    from tapeproxy.config import setting
    from tapeproxy.proxy.ca import ensure_ca
    from tapeproxy.proxy.runner import default_confdir

    click.echo(ensure_ca(Path(setting("confdir", confdir, {}, default_confdir()))))


@cli.command()
@click.option("--cassette", type=click.Path(dir_okay=False), help="Keep the cassette here.")
def demo(cassette: str | None) -> None:
    """Record and replay a fake provider on 127.0.0.1: no keys, no network."""
    from pathlib import Path

    from tapeproxy.demo import run_demo

    click.echo(run_demo(Path(cassette) if cassette else None))


# ---- redaction: lint, install-hooks ----------------------------------------------------------


# ---- review: diff, stats ---------------------------------------------------------------------


if __name__ == "__main__":  # pragma: no cover
    main()
