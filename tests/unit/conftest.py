"""The unit tier's rule, enforced: a test here that opens a network socket, starts a process or
builds a gRPC server or channel fails, naming the call; such a test belongs in tests/integration."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import grpc
import pytest

# scikit-learn's loky runs lscpu once per process to count physical cores: not the test's doing.
LIBRARY_CHILDREN = {"lscpu"}


def _refuse(what: str):
    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{what} in a unit test: move the test to tests/integration")

    return refused


def _children_refused(execute_child):
    def guarded(self: subprocess.Popen, args: object, *rest: object) -> None:
        program = args if isinstance(args, (str, bytes)) else args[0]
        if Path(str(program)).name not in LIBRARY_CHILDREN:
            _refuse(f"a child process ({program})")()
        return execute_child(self, args, *rest)

    return guarded


@pytest.fixture(autouse=True)
def _in_process_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("bind", "connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, _refuse(f"socket.{name}"))
    execute_child = _children_refused(subprocess.Popen._execute_child)
    monkeypatch.setattr(subprocess.Popen, "_execute_child", execute_child)
    for module, name in ((grpc, "server"), (grpc.aio, "server"), (grpc, "insecure_channel"),
                         (grpc, "secure_channel"), (grpc.aio, "insecure_channel"),
                         (grpc.aio, "secure_channel")):  # fmt: skip
        monkeypatch.setattr(module, name, _refuse(f"{module.__name__}.{name}"))
