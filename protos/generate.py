"""Generate serving/proto from protos/ (`make proto`); the staleness test calls generate() too."""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PROTOS = ["encoder/v1/encoder.proto", "inference/open_inference.proto"]
# The generated modules' absolute imports of their own package ("from encoder.v1 import").
_PACKAGES = [str(Path(p).parent).replace("/", ".") for p in PROTOS]
_OWN_IMPORT = re.compile(rf"^from ({'|'.join(map(re.escape, _PACKAGES))}) import", re.M)
OUT = ROOT.parent / "serving" / "proto"


def generate(out: Path = OUT) -> list[Path]:
    """Run protoc into ``out`` and make the generated imports relative, so the code works under
    whatever name the package is installed as."""
    from grpc_tools import protoc

    out.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{ROOT}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *PROTOS,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    files = sorted(p for p in out.rglob("*.py*") if "__pycache__" not in p.parts)
    for p in files:
        text = _OWN_IMPORT.sub("from . import", p.read_text(encoding="utf-8"))
        p.write_text(text, encoding="utf-8")
    for d in {out, *(p.parent for p in files)}:
        while d != out.parent:
            (d / "__init__.py").touch()
            d = d.parent
    return sorted(p for p in out.rglob("*.py*") if "__pycache__" not in p.parts)


def generated_text(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): p.read_text(encoding="utf-8")
        for p in sorted(out.rglob("*.py*"))
        if "__pycache__" not in p.parts
    }


if __name__ == "__main__":
    if "--check" in sys.argv:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp))
            stale = generated_text(Path(tmp)) != generated_text(OUT)
        sys.exit("serving/proto is stale: run `make proto`" if stale else 0)
    for p in generate():
        print(p.relative_to(ROOT.parent))
