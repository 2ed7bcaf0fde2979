"""Every relative link in the README, the changelog and docs/ points at a file and heading that
exist.

Pure Python, no mkdocs: `make docs` checks the same in strict mode, and this keeps it in
`make test`. An anchor must exist under both slug rules, the site's (Python-Markdown's toc) and
GitHub's, so a link works wherever the page is read. Pages the docs build generates
(docs/gen_config.py) count as existing; the configuration page's headings come from its renderer.
"""

from __future__ import annotations

import importlib.util
import re
import unicodedata
from pathlib import Path
from types import ModuleType

import pytest

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "mkdocs.yml").is_file())
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN = re.compile(r"`+[^`\n]*?`+")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _gen_config() -> ModuleType:
    """docs/gen_config.py, which is no package module: loaded from its path."""
    spec = importlib.util.spec_from_file_location("gen_config", DOCS / "gen_config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _gen_config()


def site_slug(heading: str) -> str:
    """Python-Markdown's toc slugify (what mkdocs checks anchors against)."""
    text = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def github_slug(heading: str) -> str:
    """GitHub's: lower case, punctuation dropped, each space a hyphen."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def heading_texts(markdown: str) -> list[str]:
    """Headings as plain text: code spans keep their content, links their text."""
    out = []
    for h in HEADING.findall(FENCE.sub("", markdown)):
        h = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", h)
        out.append(h.replace("`", "").replace("*", ""))
    return out


def anchors(markdown: str, generated: bool) -> set[str]:
    """The anchors a link may use: under both slug rules, or the site's for a generated page."""
    texts = heading_texts(markdown)
    site = {site_slug(t) for t in texts}
    return site if generated else site & {github_slug(t) for t in texts}


def text_of(path: Path) -> str | None:
    """A page's Markdown ("" for another kind of file), or None if it does not exist.

    A page the docs build generates exists: its text is the renderer's, or the file it copies.
    """
    if path.is_file():
        return path.read_text(encoding="utf-8") if path.suffix == ".md" else ""
    if path.parent == DOCS and path.name == GEN.CONFIG_PAGE:
        return GEN.render()
    if path.parent == DOCS and path.name in GEN.COPIED:
        return (ROOT / GEN.COPIED[path.name]).read_text(encoding="utf-8")
    return None


def links(markdown: str) -> list[str]:
    """Relative link targets outside code blocks and code spans."""
    prose = CODE_SPAN.sub("", FENCE.sub("", markdown))
    return [t for t in LINK.findall(prose) if not re.match(r"[a-z][a-z0-9+.-]*:", t, re.I)]


def problems(page: Path, markdown: str) -> list[str]:
    """Each link of ``markdown`` (the text of ``page``) whose file or heading does not exist."""
    out = []
    for target in links(markdown):
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        text = text_of(path)
        if text is None:
            out.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md":
            generated = not path.is_file()
            if anchor not in anchors(text, generated):
                out.append(f"{target}: no heading with anchor #{anchor}")
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    assert problems(page, page.read_text(encoding="utf-8")) == []


def test_the_check_sees_broken_links() -> None:
    text = (
        "[a](gpu.md#no-such-heading) [b](missing.md) [c](gpu.md#the-cuda-tests) "
        "[d](configuration.md#configuration-reference) `[e](x.md)` [f](https://example.com/x.md)"
        "\n```\n[g](y.md)\n```\n"
    )
    assert problems(DOCS / "probe.md", text) == [
        "gpu.md#no-such-heading: no heading with anchor #no-such-heading",
        "missing.md: no such file",
    ]


def test_slugs_follow_both_renderers() -> None:
    assert site_slug("encoder.v1 (gRPC)") == github_slug("encoder.v1 (gRPC)") == "encoderv1-grpc"
    assert site_slug("Every core: --workers N") == "every-core-workers-n"
    assert github_slug("Every core: --workers N") == "every-core---workers-n"


def test_every_page_is_in_the_site_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = {p.name for p in DOCS.glob("*.md")} | set(GEN.GENERATED)
    assert {p for p in pages if f": {p}" not in nav} == set()


def test_configuration_page_lists_every_flag() -> None:
    from zh_rnn_encoder.transport import config

    page = GEN.render()
    flags = [a.option_strings[0] for a in config.parser({})._actions if a.dest != "help"]
    assert len(flags) > 30
    assert [f for f in flags if f"| `{f}` |" not in page] == []
