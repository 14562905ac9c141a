"""Every code block of the README, pasted in order, against a server started the README's way.

The server is ``scripts/demo.sh`` itself, on a free port, with its database in a temporary
folder and ``OPENUSAGE_SKIP_SETUP=1`` (the suite runs inside the ``.venv`` it would make).
The shell blocks run in one bash session, as typed into a terminal, and each Python block
is fed to ``python`` in that session, so variables exported earlier are there. The only
change made is the port: in the text, and in ``$OPENUSAGE_URL`` for the CLI's default.
The block with the two commands is what started the server (``demo.sh``) and what runs
this suite (``test.sh``), so it is not run again.
"""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import free_port

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"^```(sh|python)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks() -> list[tuple[str, str]]:
    """The examples to paste: not the two commands, nor the benchmarks (minutes to half an
    hour each; ``test_the_benchmark_commands_start`` checks those)."""
    return [
        (lang, text)
        for lang, text in BLOCK.findall(README)
        if "scripts/test.sh" not in text and "bench/" not in text
    ]


def test_the_benchmark_commands_start() -> None:
    (commands,) = [text for _, text in BLOCK.findall(README) if "bench/" in text]
    for line in commands.splitlines():
        command = line.split("#")[0].split()
        done = subprocess.run([*command, "--help"], cwd=ROOT, capture_output=True, text=True, check=False)
        assert done.returncode == 0 and "usage:" in done.stdout, line


def test_the_readme_has_the_two_commands_and_the_examples() -> None:
    assert "bash scripts/demo.sh" in README and "bash scripts/test.sh" in README
    assert {lang for lang, _ in blocks()} == {"sh", "python"}
    assert "--port" in README  # how to choose the port is said


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    tmp = tmp_path_factory.mktemp("readme")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENUSAGE_", "OPENAI_"))}
    env |= {"OPENUSAGE_SKIP_SETUP": "1", "OPENUSAGE_DB": str(tmp / "openusage.duckdb")}
    log = (tmp / "demo.log").open("wb")
    process = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "demo.sh"), "--port", str(port)], env=env, stdout=log, stderr=log
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError((tmp / "demo.log").read_text())
        time.sleep(0.2)
    yield port, tmp
    process.terminate()
    process.wait(30)
    log.close()


def test_every_block_works_when_pasted_in_order(demo: tuple[int, Path]) -> None:
    port, tmp = demo
    assert (
        "shown once" in (tmp / "demo.log").read_text() or "shown this once" in (tmp / "demo.log").read_text()
    )
    session = []
    for lang, text in blocks():
        text = text.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        if lang == "sh":
            session.append(text)
        else:
            session.append(f"python - <<'PYTHON'\n{text}PYTHON\n")
    # The README's folder: where .venv is. A copy of it whose .venv is the real one keeps
    # the files the examples write out of the checkout.
    work = tmp / "checkout"
    work.mkdir()
    (work / ".venv").symlink_to(ROOT / ".venv")
    script = work / "readme.sh"
    script.write_text("set -euo pipefail\n" + "\n".join(session))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENUSAGE_", "OPENAI_", "VIRTUAL_ENV"))}
    env["OPENUSAGE_DB"] = str(tmp / "openusage.duckdb")  # what the demo serves, as in the README's folder
    env["OPENUSAGE_URL"] = f"http://127.0.0.1:{port}/v1"  # the CLI's default, on the test's port
    env["PATH"] = ":".join(
        p for p in env["PATH"].split(":") if ".venv" not in p
    )  # not on PATH until activated
    done = subprocess.run(
        ["bash", str(script)], cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # What each example leaves behind.
    assert '"object":"page"' in done.stdout  # curl's page
    assert "organization.usage.completions.result" in done.stdout  # the official client's results
    assert "events sent: 1 stored" in done.stdout
    assert (work / "usage.png").read_bytes().startswith(b"\x89PNG")
    costs = list(csv.DictReader(io.StringIO((work / "costs.csv").read_text())))
    assert costs and {"line_item", "amount_value"} <= set(costs[0])
    assert "has a price" in done.stdout
    # The gateway's example: a chat completion through the demo's fake upstream, then seen
    assert "Hello from the fake upstream." in done.stdout
    assert re.search(r"user_me\s.*gpt-5-mini", done.stdout), done.stdout[-3000:]
    assert "proj_demo is now named 'Demo team'" in done.stdout
    assert "$250.00 a month, inactive" in done.stdout
