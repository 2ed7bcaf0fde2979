"""The swap-under-load probe: the served bundle's path is a symlink, repointed between two
versions of the bundle and followed by SIGHUP, ``s.swaps`` times, while callers encode without
pause. Bounds: no failed call; every call that starts SWAP_WITHIN_S after a signal gets the new
version; RSS, once the load has stopped and the last replaced model is released, back within
SWAP_MB of one model's idle RSS (the old model's memory is given back)."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path

import grpc

from tools.stress.common import SENTENCE, Result, Scale, Server, channel
from zh_rnn_encoder.client import encode_request
from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.bundle import bundle_digest
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2_grpc as pb_grpc

SWAP_WITHIN_S = 1.0
SWAP_MB = 32  # RSS above one model's idle allowed after the swaps
CALLERS = 8
SETTLE_S = 10.0  # after the load, for the periodic trim to give back what the load left


def versions_of(bundle: Path, into: Path) -> tuple[Path, Path]:
    """``bundle`` and a copy of it whose bundle.json is re-dated: the same weights (so the same
    memory) under another version, as a re-export of the same checkpoint would be."""
    other = into / "other"
    shutil.copytree(bundle, other)
    mf = other / contract.MANIFEST_FILE
    manifest = json.loads(mf.read_text(encoding="utf-8"))
    manifest["created"] = "2000-01-01T00:00:00+00:00"
    mf.write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    return bundle.resolve(), other


def point(link: Path, target: Path) -> None:
    """Repoint ``link`` atomically (a new link renamed over it), as Kubernetes swaps volumes."""
    tmp = link.with_name(link.name + ".new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    tmp.replace(link)


def probe_swap(bundle: Path, cache: Path, s: Scale) -> Result:
    work = Path(tempfile.mkdtemp(prefix="encoder-swap-"))
    a, b = versions_of(bundle, work)
    link = work / "current"
    point(link, a)
    version = {a: bundle_digest(a), b: bundle_digest(b)}
    srv = Server(link, cache)
    try:
        idle = srv.idle_mb
        calls: list[tuple[float, str, str]] = []  # (started, code, version)
        signals: list[float] = []

        async def caller(stub: pb_grpc.EncoderStub, stop: asyncio.Event) -> None:
            req = encode_request([SENTENCE] * 4)
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    r = await stub.Encode(req, timeout=30)
                    calls.append((t0, "OK", r.model_version))
                except grpc.aio.AioRpcError as e:
                    calls.append((t0, e.code().name, ""))

        async def go() -> None:
            stop = asyncio.Event()
            async with channel(srv.target) as ch:
                stub = pb_grpc.EncoderStub(ch)
                tasks = [asyncio.ensure_future(caller(stub, stop)) for _ in range(CALLERS)]
                await asyncio.sleep(1.0)
                for k in range(s.swaps):
                    target = (b, a)[k % 2]
                    released = srv.proc.log.count("released after its last call")
                    point(link, target)
                    signals.append(time.monotonic())
                    srv.proc.proc.send_signal(signal.SIGHUP)
                    t0 = time.monotonic()
                    while srv.proc.log.count("released after its last call") == released:
                        assert time.monotonic() - t0 < 60, "no release within 60 s"
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(1.0)  # calls on the new version, past the bound
                stop.set()
                await asyncio.gather(*tasks)

        asyncio.run(go())
        rss, t0 = [], time.monotonic()
        while (t := time.monotonic() - t0) < min(SETTLE_S, s.idle_wait_s):
            rss.append((round(t, 1), round(srv.rss_mb())))
            time.sleep(1.0)
        after = srv.rss_mb()
        codes = Counter(c for _, c, _ in calls)
        late_old = 0  # calls that began SWAP_WITHIN_S after a signal and got the version before
        for k, at in enumerate(signals):
            new = version[(b, a)[k % 2]]
            end = signals[k + 1] if k + 1 < len(signals) else float("inf")
            late_old += sum(1 for t, c, v in calls if at + SWAP_WITHIN_S <= t < end and v != new)
        first_new = [
            min((t for t, _, v in calls if t >= at and v == version[(b, a)[k % 2]]), default=at)
            - at
            for k, at in enumerate(signals)
        ]
        m = {
            "swaps": s.swaps,
            "callers": CALLERS,
            "calls": len(calls),
            "codes": dict(codes),
            "first_new_version_after_signal_s": [round(x, 3) for x in first_new],
            "late_old_version_calls": late_old,
            "rss_idle_mb": round(idle),
            "rss_peak_mb": round(srv.peak_mb()),
            "rss_after_mb": round(after),
            "rss_settling": rss,
        }
        return Result(
            "swap under load",
            m,
            {
                "failed calls": (len(calls) - codes["OK"], "==", 0),
                "old version 1 s after a signal": (late_old, "==", 0),
                "memory after": (m["rss_after_mb"], "<=", round(idle + SWAP_MB)),
            },
        )
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)
