"""The daemon's settings from the user config files, searched as the XDG Base Directory spec
says (pyxdg, in grite.storage.config): `$XDG_CONFIG_HOME/grite/config.toml` first, then
`grite/config.toml` in each `$XDG_CONFIG_DIRS` directory (/etc/xdg by default), key by key.

Real daemons, started by `grite daemon start` (which passes no --idle-timeout), answer
`daemon status` with the idle timeout they chose.
"""

from __future__ import annotations

import json
import os

from tests.system.conftest import DaemonEnv


def write_config(directory: str, text: str) -> str:
    path = os.path.join(directory, "grite", "config.toml")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def idle_timeout_of_a_new_daemon(denv: DaemonEnv) -> int:
    started = denv.run("daemon", "start", "--json")
    assert started.returncode == 0, started.stderr
    status = json.loads(denv.run("daemon", "status", "--json").stdout)["data"]
    assert denv.run("daemon", "stop").returncode == 0
    return int(status["idle_timeout_s"])


def test_user_config_wins_over_the_machine_default_key_by_key(daemon_env: DaemonEnv) -> None:
    site, vendor = os.path.join(daemon_env.base, "site"), os.path.join(daemon_env.base, "vendor")
    daemon_env.env["XDG_CONFIG_DIRS"] = f"{site}:{vendor}"
    assert idle_timeout_of_a_new_daemon(daemon_env) == 300  # no file anywhere: the default
    write_config(vendor, "[daemon]\nidle_timeout_seconds = 120\n")
    assert idle_timeout_of_a_new_daemon(daemon_env) == 120
    write_config(site, "[snapshot]\nmax_events = 5\n")  # sets nothing the daemon reads
    assert idle_timeout_of_a_new_daemon(daemon_env) == 120
    write_config(site, "[daemon]\nidle_timeout_seconds = 240\n")  # earlier directory wins
    assert idle_timeout_of_a_new_daemon(daemon_env) == 240
    user = write_config(daemon_env.env["XDG_CONFIG_HOME"], "[daemon]\nidle_timeout_seconds = 90\n")
    assert idle_timeout_of_a_new_daemon(daemon_env) == 90
    os.unlink(user)
    assert idle_timeout_of_a_new_daemon(daemon_env) == 240


def test_a_broken_user_config_is_reported_and_the_machine_default_used(
    daemon_env: DaemonEnv,
) -> None:
    etc = os.path.join(daemon_env.base, "etc-xdg")
    daemon_env.env["XDG_CONFIG_DIRS"] = etc
    write_config(etc, "[daemon]\nidle_timeout_seconds = 150\n")
    user = write_config(daemon_env.env["XDG_CONFIG_HOME"], "[daemon\nidle_timeout_seconds = 9\n")
    assert idle_timeout_of_a_new_daemon(daemon_env) == 150
    with open(daemon_env.paths.log_file, encoding="utf-8") as f:
        log = f.read()
    assert f"WARNING ignoring config file {user} is not valid TOML" in log
