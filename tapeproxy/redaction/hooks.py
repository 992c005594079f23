"""`tapeproxy install-hooks`: the git pre-push secret gate and the textconv diff driver.

The pre-push hook lints the blobs of the commits being pushed and blocks the push on
findings. An existing pre-push hook is kept (renamed) and run first, with the same
arguments and input. The hook records the interpreter that installed it and falls back to
``tapeproxy`` on PATH. The textconv driver also names that interpreter (``PYTHON -m
tapeproxy show``): git runs it from editors, GUIs and shells where the virtualenv is not on
PATH, and a textconv that cannot start makes ``git diff`` fail outright. The setting lives in
the clone's own ``.git/config``, so a machine-specific path is fine; re-run install-hooks
after moving the virtualenv.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from tapeproxy.redaction.gitblobs import git

__all__ = ["HOOK_MARKER", "HookReport", "hook_script", "install_hooks", "textconv_command"]

HOOK_MARKER = "# tapeproxy pre-push hook"
CHAINED = "pre-push.tapeproxy-chained"
ATTRIBUTE = "diff=tapeproxy"

_HOOK = """#!/bin/sh
{marker} (installed by `tapeproxy install-hooks`; re-run it to update).
# Lints the cassettes in the commits being pushed; a finding blocks the push.
# The hook that was here before is kept as {chained} and runs first.
TAPEPROXY_PYTHON={python}
hooks_dir=$(dirname "$0")
input=$(cat)
if [ -x "$hooks_dir/{chained}" ]; then
    printf '%s\\n' "$input" | "$hooks_dir/{chained}" "$@" || exit $?
fi
tapeproxy_run() {{
    if [ -x "$TAPEPROXY_PYTHON" ] && "$TAPEPROXY_PYTHON" -c 'import tapeproxy' 2>/dev/null; then
        "$TAPEPROXY_PYTHON" -m tapeproxy "$@"
    elif command -v tapeproxy >/dev/null 2>&1; then
        tapeproxy "$@"
    else
        echo "tapeproxy pre-push: tapeproxy not found (was $TAPEPROXY_PYTHON); push blocked." >&2
        echo "Reinstall it, or push with --no-verify if you are sure." >&2
        return 2
    fi
}}
status=0
while read -r local_ref local_sha remote_ref remote_sha; do
    [ -n "$local_sha" ] || continue
    case "$local_sha" in *[!0]*) ;; *) continue ;; esac
    case "$remote_sha" in
        *[!0]*) if git cat-file -e "$remote_sha^{{commit}}" 2>/dev/null; then
                    range="$remote_sha..$local_sha"
                else
                    range="$local_sha --not --remotes=$1"
                fi ;;
        *) range="$local_sha --not --remotes=$1" ;;
    esac
    tapeproxy_run lint --push-range "$range" || status=1
done <<EOF
$input
EOF
if [ "$status" -ne 0 ]; then
    echo "tapeproxy: push blocked: secrets in the pushed cassettes (see above)." >&2
fi
exit $status
"""


@dataclass(frozen=True)
class HookReport:
    """What `install_hooks` did."""

    hook: Path
    chained: Path | None
    gitattributes: Path
    patterns_added: tuple[str, ...]


def hook_script(python: str | None = None) -> str:
    """The pre-push hook text, recording `python` (default: the running interpreter)."""
    return _HOOK.format(
        marker=HOOK_MARKER, chained=CHAINED, python=shlex.quote(python or sys.executable)
    )


def textconv_command(python: str | None = None) -> str:
    """The git textconv command: `python` (default: the running interpreter) -m tapeproxy show."""
    return f"{shlex.quote(python or sys.executable)} -m tapeproxy show"


def install_hooks(repo: Path | None = None, cassette_dirs: tuple[str, ...] = ()) -> HookReport:
    """Install the pre-push gate and the textconv driver in the git repository at `repo`.

    Raises:
        BadInputError: `repo` is not inside a git work tree.
    """
    top = Path(git(["rev-parse", "--show-toplevel"], repo).decode().strip())
    hooks = Path(git(["rev-parse", "--git-path", "hooks"], top).decode().strip())
    hooks = hooks if hooks.is_absolute() else top / hooks
    hooks.mkdir(parents=True, exist_ok=True)
    hook = hooks / "pre-push"
    chained = hooks / CHAINED
    if hook.exists() and HOOK_MARKER not in hook.read_text(errors="replace"):
        if chained.exists():  # our hook was replaced since: keep the older hook as a backup
            chained.rename(hooks / f"{CHAINED}.old.{os.getpid()}")
        hook.rename(chained)
    hook.write_text(hook_script())
    hook.chmod(0o755)
    patterns = [
        "**/cassettes/**/*.json.zst",
        *(f"{d.strip('/')}/**/*.json.zst" for d in cassette_dirs),
    ]
    added = _add_attributes(top / ".gitattributes", patterns)
    git(["config", "diff.tapeproxy.textconv", textconv_command()], top)
    git(["config", "diff.tapeproxy.cachetextconv", "true"], top)
    return HookReport(hook, chained if chained.exists() else None, top / ".gitattributes", added)


def _add_attributes(path: Path, patterns: list[str]) -> tuple[str, ...]:
    text = path.read_text() if path.exists() else ""
    present = {tuple(line.split()[:2]) for line in text.splitlines() if line.strip()}
    added = tuple(p for p in dict.fromkeys(patterns) if (p, ATTRIBUTE) not in present)
    if added:
        sep = "" if not text or text.endswith("\n") else "\n"
        path.write_text(text + sep + "".join(f"{p} {ATTRIBUTE}\n" for p in added))
    return added
