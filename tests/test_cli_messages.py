"""What the command says when it is given something it cannot do: names, usage, one message style."""

from __future__ import annotations

from tests.helpers import run_cli as run


def test_a_bare_kernelspec_name_runs_that_kernel_type():
    """Jupyter users name kernels 'python3': with no running kernel of that name, it means spec/python3."""
    result = run("exec", "python3", "-c", "print('bare name')")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "bare name\n"


def test_an_unknown_bare_name_says_where_to_look():
    result = run("exec", "no-such-thing", "-c", "1")
    assert result.returncode == 3
    assert "'no-such-thing'" in result.stderr and "kernel-nanny list" in result.stderr


def test_usage_errors_show_the_commands_own_usage():
    result = run("exec")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: kernel-nanny exec ")
    assert "kernel-nanny exec: error: give the code to run" in result.stderr


def test_timeouts_must_be_positive():
    for bad in ("-5", "0", "nan", "soon"):
        result = run("exec", "pyimport/kernel", "--timeout", bad, "-c", "1")
        assert result.returncode == 2, bad
        assert "usage: kernel-nanny exec" in result.stderr and "--timeout" in result.stderr
    result = run("start", "pyimport/kernel", "--restart-window", "-1")
    assert result.returncode == 2 and "--restart-window" in result.stderr


def test_a_request_to_a_dead_kernel_names_it_and_the_fix():
    started = run("start", "pyimport/kernel", "--name", "msg-dead", "--max-restarts", "0")
    assert started.returncode == 0, started.stderr
    try:
        assert run("kill", "msg-dead").returncode == 0
        result = run("interrupt", "msg-dead")
        assert result.returncode == 3
        # The same words as any other error: no ename prefix, the kernel's name, its state, and what revives it.
        assert result.stderr == (
            "kernel-nanny: error: kernel msg-dead is not running (state: dead); "
            "'kernel-nanny restart msg-dead' revives it\n"
        )
    finally:
        run("stop", "msg-dead")


def test_listings_show_user_supplied_names_escaped():
    name = "evil\x1b[31mred"
    started = run("start", "pyimport/kernel", "--name", name)
    assert started.returncode == 0, started.stderr
    try:
        listing = run("ps").stdout
        assert "\x1b" not in listing and "evil\\x1b[31mred" in listing
        # exec's notes name the kernel too: its hint about re-joining a run that takes a while
        ran = run("exec", name, "-c", "import time; time.sleep(3)")
        assert ran.returncode == 0, ran.stderr
        assert "--rejoin" in ran.stderr and "\x1b" not in ran.stderr and "evil\\x1b[31mred" in ran.stderr
    finally:
        run("stop", name)


def test_keys_says_when_it_creates_the_daemons_key_pair(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n')
    first = run("keys", "--config", str(config))
    assert first.returncode == 0, first.stderr
    assert f"created the daemon's key pair in {tmp_path / 'state' / 'server.key'}" in first.stderr
    second = run("keys", "--config", str(config))
    assert "created" not in second.stderr and second.stdout == first.stdout


def test_logs_point_at_the_published_connection_file_not_the_nannys_private_one():
    started = run("start", "spec/python3", "--name", "where")
    assert started.returncode == 0, started.stderr
    kernel_id, published = started.stdout.split()
    try:
        # ipykernel prints "--existing <its connection file>" before it answers kernel_info, so the nanny has
        # relayed it by now; the log file has no change event to wait on, hence the bounded re-reads.
        for _ in range(50):
            logs = run("logs", "where").stdout
            if "--existing" in logs:
                break
        assert f"--existing {published}" in logs
        assert f"nanny-{kernel_id}" not in logs
    finally:
        run("stop", "where")
