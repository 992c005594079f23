"""The `tapeproxy` command line: thin click commands that parse, call one function, print.

Errors from the library (`TapeproxyError`) become ``Error: ...`` on stderr and the error's
exit code, never a traceback.
"""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from tapeproxy import __version__
from tapeproxy.errors import TapeproxyError
from tapeproxy.modes import MODES, mode_help, parse_mode

RECORDING = tuple(m for m in MODES if m != "none")

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
    """Run the group, turning library errors into exit codes (`tapeproxy.launch` calls it)."""
    try:
        cli.main(standalone_mode=False, prog_name="tapeproxy")
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


@cli.group()
def stubs() -> None:
    """Stub answers: hand-written rules served in each provider's exact wire format.

    A stubs file (YAML, JSON or TOML) is a list of rules; `replay`, `record` and `serve` take
    it with --stubs FILE. A request the cassette has no answer for is answered by the first
    rule that matches it. Each rule:

    \b
      - match:                  # all optional; every one given must hold
          provider: openai      # openai | azure | anthropic | gemini | a host (glob)
          endpoint: chat        # chat | responses | messages | generate | embeddings
          model: "gpt-5*"       # glob
          last_user: "France"   # substring of the last user message (last_user_re: regex)
          body: {"metadata.purpose": "scoring"}   # dotted JSON path -> value
          headers: {"x-test-worker": "w1"}
        answer:                 # one of text, tool_calls, json, error ({} for embeddings)
          text: "Paris."
          # tool_calls: [{name: get_weather, arguments: {city: Paris}}]
          # json: {"score": 8.5}
          # error: {status: 429, type: rate_limit_exceeded, message: "...", retry_after: 1}
          reasoning: "..."      # optional
          usage: {input: 12, output: 3}   # optional; else ceil(characters / 4)
          finish_reason: stop   # optional
        # answers: [{text: first}, {text: second}]   instead of answer; the last repeats
        stream: {ttft_ms: 300, tokens_per_s: 60, jitter: 0.2}   # optional timing
    """


@stubs.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def stubs_check(files: tuple[Path, ...]) -> None:
    """Validate stubs FILES: exit 0, or 2 naming the file, rule and field that is wrong."""
    from tapeproxy.providers.stubs import load_rules

    for path in files:
        rules = load_rules(path)
        click.echo(f"{path}: {len(rules)} rule(s), valid")


@stubs.command("from-cassette")
@click.argument("cassette", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the rules here [default: standard output].",
)
def stubs_from_cassette(cassette: Path, output: Path | None) -> None:
    """Write a stubs file with one rule per LLM answer recorded in CASSETTE (matching its
    endpoint, model and last user message), to edit by hand."""
    from tapeproxy.review.stubgen import rules_from_cassette, to_yaml

    text = to_yaml(rules_from_cassette(cassette))
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"{output}: {text.count('- match:')} rule(s)", err=True)


@cli.command("import-vcr")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the converted cassettes (created if missing); the inputs' folders are "
    "mirrored below their common folder.",
)
@click.option(
    "--for-pytest",
    "pytest_root",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Convert every YAML cassette in a cassettes/ folder under this root, each written "
    "beside its source, where the tapeproxy pytest plugin finds it for the same test.",
)
def import_vcr(files: tuple[Path, ...], out_dir: Path | None, pytest_root: Path | None) -> None:
    """Convert vcrpy / pytest-recording YAML cassettes (FILES) into tapeproxy cassettes.

    Bodies are stored decoded (gzip undone, Content-Encoding dropped), credentials redacted,
    keys computed with the default match rules. Streamed bodies get one chunk per event at
    offset 0, since vcrpy records no timing. Every file is converted before anything is
    written: one unreadable file writes nothing and exits with status 2.

    A pytest-recording suite: `tapeproxy import-vcr --for-pytest tests/` converts
    tests/**/cassettes/<module>/<test>.yaml in place; the plugin then replays each test
    (parametrised ones too) from its converted cassette with no renaming.
    """
    from tapeproxy.cassettes.vcr import import_vcr as convert
    from tapeproxy.cassettes.vcr import pytest_recording_files
    from tapeproxy.redaction import Redactor

    if (out_dir is None) == (pytest_root is None):
        raise click.UsageError("give --out DIR with FILES, or --for-pytest ROOT")
    if pytest_root is not None:
        if files:
            raise click.UsageError("--for-pytest ROOT finds the files itself: give no FILES")
        files = tuple(pytest_recording_files(pytest_root))
        if not files:
            raise click.UsageError(f"no YAML cassettes in a cassettes/ folder under {pytest_root}")
    elif not files:
        raise click.UsageError("give the YAML files to convert")
    results = convert(
        files,
        out_dir or pytest_root or Path("."),
        redactor=Redactor(),
        in_place=pytest_root is not None,
    )
    for r in results:
        state = "written" if r.written else "unchanged"
        click.echo(f"{r.source} -> {r.target} ({r.interactions} interaction(s), {state})")
    total = sum(r.interactions for r in results)
    click.echo(f"Imported {len(results)} file(s), {total} interaction(s)")


@cli.command("export")
@click.argument("cassette", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--har", "har", is_flag=True, required=True, help="As HAR 1.2 (the one format).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
def export_command(cassette: Path, har: bool, output: str | None) -> None:
    """Write CASSETTE as HAR 1.2, which browser devtools and HAR viewers open: tapeproxy
    export --har CASSETTE -o FILE.har

    Every interaction is an entry (pages: [], timings with wait = time to first byte),
    request bodies as postData.text, response bodies as content.text (binary ones base64).
    The key, a stream's chunk offsets and a transport failure are kept in _tapeproxy fields,
    so import-har gives the cassette back.
    """
    from tapeproxy.cassettes import store
    from tapeproxy.cassettes.har import export_har

    text = json.dumps(export_har(store.load(cassette)), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    Path(output).write_text(text, encoding="utf-8")
    click.echo(f"HAR written to {output}", err=True)


@cli.command("import-har")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder the cassettes go to (one per HAR file, named after it).",
)
def import_har_command(files: tuple[Path, ...], out_dir: Path) -> None:
    """Convert HAR files (devtools, Playwright's recordHar, tapeproxy export) into cassettes.

    Each entry is redacted and keyed like a recording (credentials never reach the
    cassette); every file is read before any is written: one unreadable file writes nothing
    and exits with status 2.
    """
    import datetime as dt

    from tapeproxy.cassettes.har import import_har
    from tapeproxy.redaction import Redactor

    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    results = import_har(files, out_dir, redactor=Redactor(), created=now)
    for r in results:
        state = "written" if r.written else "unchanged"
        click.echo(f"{r.source} -> {r.target} ({r.interactions} interaction(s), {state})")


# ---- proxy: record, replay, serve, ca, demo --------------------------------------------------


def _proxy_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by record, replay and serve (each also TAPEPROXY_<KEY> and config)."""
    options = [
        click.option("--cassette", help="Cassette file (.json.zst)."),
        click.option(
            "--cassette-dir",
            help="Where the control API's cassette names resolve (POST "
            '$TAPEPROXY_CONTROL_URL/cassette {"name": "suite/test"} uses '
            "DIR/suite/test.json.zst) [default: the --cassette's folder].",
        ),
        click.option(
            "--no-proxy",
            "no_proxy",
            help="Hosts reached directly, not through the proxy: NO_PROXY for CMD (record, "
            "replay) or in the printed exports (serve) [default: localhost,127.0.0.1,::1]; '' "
            "sends everything through the proxy.",
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
        click.option(
            "--max-age",
            metavar="DURATION",
            help="Answers recorded longer ago than this (30d, 12h, 2w) are expired: see "
            "--on-expiry [default: never].",
        ),
        click.option(
            "--on-expiry",
            type=click.Choice(["warn", "fail", "rerecord"]),
            help="warn: serve and name them in the summary (default); fail: answer 599 like a "
            "miss; rerecord: fetch and record again (recording modes; fail in replay).",
        ),
        click.option(
            "--resolve",
            multiple=True,
            metavar="HOST:PORT=ADDR:PORT",
            help="Reach HOST:PORT at ADDR:PORT, keeping HOST for Host, SNI and certificate "
            "checks (curl's word; repeatable). Java and Go never proxy loopback hosts: name a "
            "provider and resolve it to a local server.",
        ),
        click.option(
            "--routes-port",
            metavar="PORT",
            help="Port of the routes' own listener, on the --listen host (the SDK base-URL "
            "variables point at it; cassette hits are answered there without mitmproxy) "
            "[default: any free port].",
        ),
        click.option(
            "--ws-match",
            type=click.Choice(["position", "json"]),
            help="How a replayed WebSocket session matches client messages: position (the "
            "n-th is answered as the n-th recorded one, whatever it says; default) or json "
            "(by content, redacted, ignoring event_id, item.id, previous_item_id and "
            "ignore_json_paths; any order; a changed message is a miss).",
        ),
        click.option(
            "--route",
            multiple=True,
            metavar="NAME=URL",
            help="Also answer http://PROXY/NAME/... as URL/... (repeatable; besides the "
            "openai, anthropic and gemini routes, whose SDK base-URL variables CMD gets).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _stub_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--stubs` and `--seed`, for the commands that may answer from stubs."""
    func = click.option(
        "--seed",
        help="Seed of stub ids, timestamps and jitter, and of which requests --faults fails "
        "[default: 0]; equal seeds, equal bytes.",
    )(func)
    return click.option(
        "--stubs",
        multiple=True,
        metavar="FILE",
        help="Answer what the cassette does not from this stubs file (YAML, JSON or TOML; "
        "repeatable, first matching rule wins). See `tapeproxy stubs --help`.",
    )(func)


def _fault_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--faults` and its timings, `--journal` and `--report`, for the commands that replay."""
    func = click.option(
        "--report",
        metavar="FILE",
        help="Write a JSON report: answers by source and fault kind, and how each client "
        "(by User-Agent) behaved under faults: retries and the verdicts retry_after_ignored, "
        "retried_non_retryable, retry_storm, no_backoff (also in the summary).",
    )(func)
    func = click.option(
        "--profile",
        metavar="FILE",
        help="Behave like the recordings profiled in FILE (tapeproxy profile --format toml): "
        "its [faults] (unless --faults), its [latency] (unless --latency), and for stub "
        "answers its [usage] token counts.",
    )(func)
    func = click.option(
        "--journal",
        metavar="FILE",
        help="Write every exchange the proxy answered (redacted, with its source: cassette, "
        "stub, fault, live, miss) to this cassette file, for stats, profile and parity.",
    )(func)
    func = click.option(
        "--fault-delay",
        metavar="SECONDS",
        help="How long a `stall` pauses a stream and a `slow` answer is late [default: 2].",
    )(func)
    func = click.option(
        "--fault-retry-after",
        metavar="SECONDS",
        help="The retry-after that 429, 503, 529 and overloaded faults send [default: 1].",
    )(func)
    return click.option(
        "--faults",
        metavar="SPEC",
        help="Fail this share of the answers from the cassette or stubs: KIND=RATE,... "
        "(e.g. 429=10%,500=5%,reset=4%) or @FILE (a profile's [faults] table). Kinds: an "
        "HTTP status, overloaded, timeout, reset, truncate, stall, malformed, slow. Which "
        "requests fail depends on --seed, the request and its repetition only.",
    )(func)


def _resolve(
    mode_default: str, listen_default: str = "127.0.0.1:0", **flags: Any
) -> tuple[Any, str]:
    from pathlib import Path

    from tapeproxy.config import load_config, setting
    from tapeproxy.proxy.settings import DEFAULT_NO_PROXY, build_config

    path = flags.pop("config_file", None)
    config = load_config(Path(path) if path else None)
    no_proxy = setting("no_proxy", flags.pop("no_proxy", None), config, DEFAULT_NO_PROXY)
    built = build_config(flags, config, parse_mode(mode_default), listen_default=listen_default)
    return built, str(no_proxy)


def _command(cmd: tuple[str, ...]) -> tuple[str, ...]:
    """CMD as given after the options; an unknown option before `--` is a usage error.

    Unknown options are let through so that CMD's own options need no quoting, which also
    lets a misspelt option of ours (`--casette`) pass as CMD: it is named here instead.
    """
    if cmd and cmd[0].startswith("-") and cmd[0] != "-":
        ctx = click.get_current_context()
        name = cmd[0].split("=", 1)[0]
        known = [o for p in ctx.command.params for o in p.opts if o.startswith("--")]
        elsewhere = sorted(
            f"{command_name} {name}"
            for command_name, command in cli.commands.items()
            if any(name in p.opts for p in command.params)
        )
        message = f"No such option '{name}' for {ctx.info_name}"
        message += f"; it belongs to: {', '.join(elsewhere)}." if elsewhere else "."
        closest = difflib.get_close_matches(name, known, n=1)  # one suggestion, the best
        raise click.NoSuchOption(name, message=message, possibilities=closest, ctx=ctx)
    return cmd


@cli.command(context_settings={"ignore_unknown_options": True})
@_proxy_options
@_stub_options
@click.option(
    "--mode",
    type=click.Choice(RECORDING),
    help=f"Record mode [default: all]. {mode_help(RECORDING)}.",
)
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED, required=True)
def record(cmd: tuple[str, ...], **flags: Any) -> None:
    """Run CMD through the proxy and record its traffic: tapeproxy record -- CMD ARGS...

    Exits with CMD's exit code.
    """
    from tapeproxy.proxy.run import run_command

    cmd = _command(cmd)
    config, no_proxy = _resolve("all", **flags)
    sys.exit(run_command(config, cmd, no_proxy))


@cli.command(context_settings={"ignore_unknown_options": True})
@_proxy_options
@_stub_options
@_fault_options
@click.option(
    "--latency",
    help="recorded (default), none, a factor such as x0.5, or @FILE: each answer's timing "
    "drawn from a profile's [latency] table (seeded by --seed).",
)
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED, required=True)
def replay(cmd: tuple[str, ...], **flags: Any) -> None:
    """Run CMD against the cassette, never the network: tapeproxy replay -- CMD ARGS...

    A request the cassette has no answer for is answered by the first matching rule of the
    --stubs files, if any; else it is a miss. With --faults, a seeded share of the answers
    fail the way the provider fails (error JSON and headers, reset, timeout, truncated or
    malformed streams). Exits with CMD's exit code, or 3 when CMD passed but some requests
    had no answer.
    """
    from tapeproxy.proxy.run import run_command

    cmd = _command(cmd)
    config, no_proxy = _resolve("none", mode="none", **flags)
    sys.exit(run_command(config, cmd, no_proxy))


@cli.command(context_settings={"ignore_unknown_options": True})
@_proxy_options
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also keep every exchange (redacted) in this new cassette file.",
)
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED, required=True)
def live(cmd: tuple[str, ...], journal: Path | None, **flags: Any) -> None:
    """Run CMD against the real providers and say what it spent: tapeproxy live -- CMD ARGS...

    Every request passes through (nothing is replayed); the summary gives the requests that
    reached a provider, token totals and the cost at list prices. Exits with CMD's exit code,
    or 4 when CMD passed but no request reached a provider (a live run stubbed by accident).
    """
    from tapeproxy.proxy.run import run_live
    from tapeproxy.review.live import account, exit_code

    cmd = _command(cmd)
    config, no_proxy = _resolve("all", **flags)
    code, exchanges = run_live(config, cmd, no_proxy, journal)
    spent = account(exchanges)
    click.echo(spent.summary(), err=True)
    if journal is not None:
        click.echo(f"  journal: {journal}", err=True)
    if exit_code(code, spent) != code:
        click.echo(
            "Error: CMD passed but no request reached a provider: a live run that was stubbed "
            "by accident (a client wired to a fake, USE_MOCK_LLM set?), or a client that "
            "ignores HTTPS_PROXY.",
            err=True,
        )
    sys.exit(exit_code(code, spent))


@cli.command()
@_proxy_options
@_stub_options
@_fault_options
@click.option(
    "--mode",
    type=click.Choice(MODES),
    help=f"Record mode [default: none]. {mode_help()}.",
)
@click.option("--listen", help="Address to listen on [default: 127.0.0.1:8080].")
@click.option(
    "--latency",
    help="recorded (default), none, a factor such as x0.5, or @FILE: each answer's timing "
    "drawn from a profile's [latency] table (seeded by --seed).",
)
@click.option(
    "--proxy-auth",
    metavar="USER:PASS",
    help="Clients must send these as Basic Proxy-Authorization (answered 407 otherwise); "
    "needed to record on an address other machines reach. Prefer TAPEPROXY_PROXY_AUTH.",
)
@click.option(
    "--allow-open-proxy",
    is_flag=True,
    default=None,
    help="Record on a non-loopback address without --proxy-auth (a network that is yours alone).",
)
@click.option(
    "--idle-timeout",
    help="Seconds a client connection may carry no traffic before it is closed [default: "
    "600; an upstream thinking longer than this is cut].",
)
@click.option(
    "--handshake-timeout",
    help="Seconds a new client has to send its first request (CONNECT, TLS and request "
    "line included) before it is closed [default: 30].",
)
@click.option(
    "--max-connections",
    help="Clients served at once; more are refused with a log line [default: half the "
    "process's open-file limit].",
)
@click.option("-v", "--verbose", is_flag=True, help="Also print a line per recorded exchange.")
def serve(verbose: bool, **flags: Any) -> None:
    """Run the proxy until Ctrl-C, SIGTERM or SIGHUP, for clients you start yourself.

    Prints the variables clients need, then one line per miss as it happens (and per
    recorded exchange with -v), and the summary when it stops. Clients from public addresses
    are refused; on an address other than loopback, a recording mode needs --proxy-auth.
    """
    from tapeproxy.proxy.run import serve_forever

    config, no_proxy = _resolve("none", listen_default="127.0.0.1:8080", **flags)
    sys.exit(serve_forever(config, no_proxy, verbose))


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
@click.option(
    "--max-bytes",
    type=click.IntRange(min=1),
    help="Largest file read, decompressed [default: 268435456 (256 MiB), lint_max_bytes]; "
    "a larger one fails the gate (exit 2) unscanned.",
)
def lint(
    paths: tuple[Path, ...],
    fmt: str,
    reveal: bool,
    staged: bool,
    push_range: str | None,
    config_file: Path | None,
    max_bytes: int | None,
) -> None:
    """Scan cassettes (and JSON, YAML, text files) for leaked secrets.

    PATHS are files or directories (walked recursively; test folders are not skipped). Exit
    status: 0 clean, 1 findings, 2 bad input or a damaged cassette (a `.json.zst` that is
    not a readable tapeproxy/1 cassette; its text is scanned all the same). Allow-list a
    finding by adding its fingerprint (sha256 of the secret) to `allowlist` in
    [tool.tapeproxy].
    """
    from tapeproxy.redaction.commands import run_lint

    def bar(total: int) -> Any:
        return click.progressbar(length=total, label="Linting", file=sys.stderr)

    progress = bar if sys.stderr.isatty() else None
    output, found, damaged = run_lint(
        paths, fmt, reveal, staged, push_range, config_file, progress, max_bytes
    )
    click.echo(output, nl=False)
    for item in damaged:
        click.echo(f"Error: {item.file}: cannot be linted whole: {item.problem}", err=True)
    sys.exit(2 if damaged else 1 if found else 0)


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
@click.option(
    "--max-age",
    metavar="DURATION",
    help="Count interactions recorded longer ago than this (30d, 2w) and name the date-pinned "
    "models among them (gpt-4o-2024-08-06, claude-...-20241022).",
)
def stats_command(cassettes: tuple[str, ...], fmt: str, max_age: str | None) -> None:
    """Summarise cassettes: traffic, errors, latency, tokens and estimated cost.

    Counts interactions by host, endpoint, model and status; error rate by status and
    provider error type; TTFB and total latency (min, mean, p50, p95, max); token usage as
    the providers reported it (streams included); and the cost a live run would have had at
    the list prices bundled in genai-prices (offline). Stubs files (.yaml, .json, .toml)
    count too, one answer per rule answer, apart from recorded ones (by source).
    """
    from tapeproxy.cassettes.age import parse_age
    from tapeproxy.review import render_stats
    from tapeproxy.review.stats import collect
    from tapeproxy.review.stubview import is_stubs_file, load_any

    stubbed = [path for path in cassettes if is_stubs_file(path)]
    limit = parse_age(max_age) if max_age else None
    stats = collect(((path, load_any(path)) for path in cassettes), stubbed, limit)
    click.echo(render_stats.render(stats, fmt), nl=False)


def _cassette_files(paths: tuple[str, ...]) -> list[tuple[str, Any]]:
    """Named cassettes of files and folders (every *.json.zst under a folder, sorted).

    Raises:
        BadInputError: a path does not exist, or a folder holds no cassette.
    """
    from pathlib import Path

    from tapeproxy.cassettes import store
    from tapeproxy.errors import BadInputError

    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(path.rglob("*.json.zst"))
            if not found:
                raise BadInputError(f"{path}: no cassettes (*.json.zst) in this folder")
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise BadInputError(f"{path}: no such cassette or folder")
    return [(str(f), store.load(f)) for f in files]


@cli.command("profile")
@click.argument("cassettes", nargs=-1, required=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "toml"]),
    default="text",
    show_default=True,
    help="toml feeds --profile FILE, --faults @FILE and --latency @FILE.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
def profile_command(cassettes: tuple[str, ...], fmt: str, output: str | None) -> None:
    """How the provider behaved in CASSETTES (files, folders or journals).

    Per host, endpoint and model: requests; status and provider error type counts; retry
    success (a failed request followed by the same request: how often it finally
    succeeded); TTFB and total latency of the answers that did not fail (min, mean, p50,
    p95, max); stream chunk counts and gaps; token usage; and the response shape: every
    JSON path with its types and how often it is present, and which request setting
    (reasoning_effort, thinking, tools...) makes a field appear. The [faults], [latency]
    and [usage] tables are what a mock run samples from (README, "Profile and parity").
    """
    from pathlib import Path

    from tapeproxy.review.profile import build
    from tapeproxy.review.render_profile import render

    text = render(build(_cassette_files(cassettes)), fmt)
    if output is None:
        click.echo(text, nl=False)
        return
    Path(output).write_text(text, encoding="utf-8")
    click.echo(f"profile written to {output}", err=True)


def _profile_of(path: str) -> dict[str, Any]:
    """A profile: read from a profile file (.toml, .json), else built from cassettes (a
    file, a folder of them, or a journal)."""
    from pathlib import Path

    from tapeproxy.profilefile import load_profile
    from tapeproxy.review.profile import build

    given = Path(path)
    if given.is_file() and given.suffix in (".toml", ".json"):
        return load_profile(given)
    return build(_cassette_files((path,)))


@cli.command("parity")
@click.argument("reference")
@click.argument("observed")
@click.option(
    "--tolerance",
    "tolerances",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a tolerance (repeatable): error_rate=0.01 and retry_success=0.01 (test "
    "significance, 99 %), latency_mean=0.2, latency_min=0.5, latency_max=1.0, "
    "tokens_mean=0.2 (shares of the reference), shape=exact|subset|off.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    show_default=True,
    help="markdown is for a pull-request comment.",
)
def parity_command(reference: str, observed: str, tolerances: tuple[str, ...], fmt: str) -> None:
    """Whether OBSERVED behaves like REFERENCE (each a cassette, a folder, a journal or a
    profile): error rate by status and provider type (two-sample test at 99 %), retry
    success rate, latency mean/min/max, token usage and response shape, per host, endpoint
    and model. Prints each measure with reference, observed, tolerance and verdict.

    Exits 0 when every measure is within its tolerance, 1 when one is beyond, 2 on bad
    input.
    """
    from tapeproxy.review.parity import compare, parse_tolerances, render

    limits = parse_tolerances(tolerances)
    measures = compare(_profile_of(reference), _profile_of(observed), limits)
    click.echo(render(measures, fmt, reference, observed), nl=False)
    sys.exit(0 if all(m.within for m in measures) else 1)


if __name__ == "__main__":  # pragma: no cover
    main()
