"""The docs site's generated pages: the configuration reference, the home page and the changelog.

A mkdocs hook (`hooks:` in mkdocs.yml), so nothing here is written twice or committed:
- configuration.md is rendered from encoder-serve's own argparse parser, the one flag table
  (`zh_rnn_encoder.transport.config`), with the help text and defaults that `--help` prints;
- index.md is README.md and changelog.md is CHANGELOG.md, their links rewritten from the
  repository's layout (`docs/x.md`) to the site's (`x.md`).

`python docs/gen_config.py` prints the configuration page. mkdocs is imported only by the hook.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONFIG_PAGE = "configuration.md"
# Site page -> the repository file it is made from.
COPIED = {"index.md": "README.md", "changelog.md": "CHANGELOG.md"}
GENERATED = (CONFIG_PAGE, *COPIED)

# What --help appends to each flag's help: "[env NAME; default VALUE]".
_HELP = re.compile(r"^(?P<help>.*) \[env (?P<env>\S+); default (?P<default>.*)\]$", re.S)

INTRO = """\
# Configuration reference

`encoder-serve`'s flags, generated from its argument parser when the docs are built;
`encoder-serve --help` prints the same.
{epilog} An empty variable counts as unset.

Where each group is explained:

- limits and the status each one gives: [protocols](protocols.md#errors-and-limits);
- `--max-inflight-mb`, `--max-streams-per-connection`, `--grace-period-s`: the memory model and
  the drain, [reliability](reliability.md);
- `--tls-*`, `--auth-tokens*`, `--reflection`, the addresses: [security](security.md);
- `--workers`, `--metrics-listen`, `--ready-file`, `--port-file`: [deployment](deployment.md);
- `--max-document-tokens`, `--document-deadline-s`:
  [documents](resumable.md#documents-of-any-length);
- `--device`: [GPU](gpu.md); `--jieba-cache-dir`: [tokenizer](tokenizer.md#the-jieba-cache);
- `--bundle`, `--model`, `--model-name`, `--expect-bundle-sha256`: [models and versions](models.md).

| flag | environment variable | default | what |
| --- | --- | --- | --- |
"""


def rows() -> list[tuple[str, str, str, str]]:
    """(flag, environment variable, default, help) for every flag, in the parser's order."""
    from zh_rnn_encoder.transport import config

    ap = config.parser({})  # no environment: the defaults, not this machine's variables
    out = []
    for action in ap._actions:
        if "--help" in action.option_strings:
            continue
        m = _HELP.match(action.help or "")
        if m is None:
            raise ValueError(f"{action.option_strings}: help without [env ...; default ...]")
        default = {"True": "on", "False": "off"}.get(m["default"], m["default"])
        out.append((action.option_strings[0], m["env"], default, m["help"]))
    return out


def render() -> str:
    """The whole configuration page, as Markdown."""
    from zh_rnn_encoder.transport import config

    epilog = config.parser({}).epilog or ""
    lines = [f"| `{f}` | `{e}` | {_cell(d)} | {_cell(h)} |" for f, e, d, h in rows()]
    return INTRO.format(epilog=epilog) + "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def site_links(markdown: str) -> str:
    """A repository file's relative links as the site sees them (docs/ is the site's root)."""
    markdown = re.sub(r"\]\(docs/", "](", markdown)
    return re.sub(r"\]\(CHANGELOG\.md", "](changelog.md", markdown)


def on_files(files: Any, config: Any) -> Any:
    """mkdocs's hook: add the generated pages to the site's files."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, CONFIG_PAGE, content=render()))
    for page, source in COPIED.items():
        text = (ROOT / source).read_text(encoding="utf-8")
        files.append(File.generated(config, page, content=site_links(text)))
    return files


if __name__ == "__main__":
    print(render(), end="")
