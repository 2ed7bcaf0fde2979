"""bundle.json as text, and the one edit an exported bundle allows: its model card's quality
figures, measured after export (encoder-eval) and written in place without touching a file the
manifest hashes."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.bundle import load_bundle
from zh_rnn_encoder.core.manifest import Manifest, from_json


def manifest_text(m: Manifest) -> str:
    return json.dumps(m.to_json(), ensure_ascii=False, indent=2) + "\n"


def set_quality(bundle_dir: Path, quality: dict[str, float]) -> str:
    """Replace the card's quality figures in ``bundle_dir``/bundle.json atomically; every other
    file stays as it is. Returns bundle.json's new sha256 (the bundle's new version). Raises
    BundleError if the bundle does not load, before or after; ValueError if it has no card or a
    figure is not a number."""
    bundle_dir = Path(bundle_dir)
    figures = from_json(dict[str, float], quality, "quality")
    if bad := [k for k, v in figures.items() if not math.isfinite(v)]:
        raise ValueError(f"quality.{bad[0]}: not a finite number ({figures[bad[0]]})")
    m = load_bundle(bundle_dir).manifest
    if m.card is None:
        raise ValueError(
            f"{bundle_dir}: bundle.json has no model card to hold quality figures (only trained "
            "models carry one)"
        )
    card = dataclasses.replace(m.card, quality=figures)
    path = bundle_dir / contract.MANIFEST_FILE
    before = path.read_text(encoding="utf-8")
    _replace(path, manifest_text(dataclasses.replace(m, card=card)))
    try:
        return load_bundle(bundle_dir).digest
    except Exception:
        _replace(path, before)  # never leave a bundle that the server would refuse
        raise


def _replace(path: Path, text: str) -> None:
    """A temporary file beside ``path``, then os.replace: readers see the old or the new file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_quality(path: Path, model: str = "") -> dict[str, float]:
    """Figures from an evaluation's JSON: encoder-eval's quality.json (the model named
    ``model``, or its first bundle), an object with a "quality" object, or a flat object."""
    d = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(d, dict) and isinstance(d.get("models"), list):
        d = _eval_model(path, d["models"], model)
    elif isinstance(d, dict) and isinstance(d.get("quality"), dict):
        d = d["quality"]
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a JSON object of metric -> number")
    return from_json(dict[str, float], d, f"{path}: quality")


def _eval_model(path: Path, models: list, name: str) -> object:
    rows = [m for m in models if isinstance(m, dict)]
    pick = (
        [m for m in rows if m.get("name") == name]
        if name
        else [m for m in rows if m.get("kind") == "bundle"][:1]
    )
    if not pick:
        names = ", ".join(str(m.get("name")) for m in rows)
        raise ValueError(f"{path}: no model {name or 'of kind bundle'} (has: {names})")
    metrics = pick[0].get("metrics")
    return (
        {k: v for k, v in metrics.items() if v is not None} if isinstance(metrics, dict) else None
    )
