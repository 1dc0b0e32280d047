"""The distribution holds what a user imports, and the docs list every setting."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from clipwire.server.config import describe_settings

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_holds_every_package(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path), str(ROOT)],
        check=True,
    )
    (wheel,) = tmp_path.glob("clipwire-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("protocol/codec.py", "protocol/SPEC.md", "protocol/py.typed",
                   "server/hub.py", "server/store/sqlite.py", "server/transport/websocket.py",
                   "server/transport/picows.py", "server/transport/http.py",
                   "client/__init__.py", "client/chat.py", "server/demo/feed.py",
                   "server/demo/static/index.html", "server/demo/static/app.js",
                   "server/demo/static/style.css", "server/demo/static/vendor/clipwire-client.js"):
        assert f"clipwire/{module}" in names, module
    assert not any(name.startswith(("server/", "protocol/", "tests/")) for name in names)
    (metadata,) = (n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [line.split(":", 1)[1].strip() for line in
                zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
                if line.startswith("Requires-Dist:")]
    # --redis-url works after a plain install; PostgreSQL stays an extra (asyncpg).
    assert any(r.startswith("redis[hiredis]") and "extra" not in r for r in requires), requires
    assert all("extra" in r for r in requires if r.startswith("asyncpg"))
    assert "License-Expression: MIT" in zipfile.ZipFile(wheel).read(metadata).decode()


def test_readme_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    for flag, env, _default, _help in describe_settings():
        assert f"`{flag}`" in readme and f"`{env}`" in readme, flag


def test_cli_help_names_every_setting() -> None:
    out = subprocess.run([sys.executable, "-m", "clipwire.server", "serve", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for flag, env, _default, _help in describe_settings():
        assert flag in out and env in out, flag
