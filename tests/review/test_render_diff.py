"""Acceptance 5: the markdown report is a summary table plus collapsible sections."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from markdown_it import MarkdownIt

from tapeproxy.cli import cli
from tapeproxy.review.diff import DiffReport
from tapeproxy.review.render_diff import render, to_json
from tests.review.builders import anthropic_body, cassette, chat_body, interaction

URL = "https://api.openai.com/v1/chat/completions"


def _markdown(tmp_path: Path) -> str:
    a = cassette(
        tmp_path / "a.json.zst",
        [
            interaction(URL, chat_body("Hello there, how are you today?")),
            interaction(URL, anthropic_body("Gone soon"), request={"gone": True}),
        ],
    )
    b = cassette(
        tmp_path / "b.json.zst",
        [
            interaction(URL, chat_body("Completely unrelated words <b>&</b>.")),
            interaction(URL, chat_body("Brand new"), request={"new": True}),
        ],
    )
    result = CliRunner().invoke(cli, ["diff", str(a), str(b), "--format", "markdown"])
    assert result.exit_code == 1
    return result.output


def test_markdown_is_a_table_then_details_sections(tmp_path: Path) -> None:
    text = _markdown(tmp_path)
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    types = [t.type for t in tokens]
    assert "table_open" in types
    headers = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "th_open"]
    assert headers[:3] == ["cassette", "status", "drift"]
    cells = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "td_open"]
    assert cells[1:] == ["modified", "❌ yes", "1", "1", "1", "1", "0"]
    html = [t.content for t in tokens if t.type == "html_block"]
    assert any("<details>" in h and "<summary>" in h for h in html)
    assert any("</details>" in h for h in html)
    table_at, details_at = (
        types.index("table_open"),
        next(
            i for i, t in enumerate(tokens) if t.type == "html_block" and "<details>" in t.content
        ),
    )
    assert table_at < details_at
    fences = [t for t in tokens if t.type == "fence"]
    assert fences and fences[0].info == "diff"
    assert "+Completely unrelated words <b>&</b>." in fences[0].content


def test_markdown_escapes_html_outside_code(tmp_path: Path) -> None:
    text = _markdown(tmp_path)
    rendered = MarkdownIt("commonmark").enable("table").render(text)
    assert "<b>&</b>" not in rendered.replace("<pre>", "").split("<code class")[0]


def test_empty_report_in_every_format() -> None:
    report = DiffReport()
    assert render(report, "text") == "No cassette changed.\n"
    assert "No cassette changed." in render(report, "markdown")
    assert to_json(report) == {"drift": False, "cassettes": []}
