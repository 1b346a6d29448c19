"""A config or rule test path naming a device, a FIFO or a huge file: refused with a clear error and exit 2,
before reading, with bounded memory.

Before: `-c` naming a symlink to /dev/urandom grew to 1.6 GB in 20 s (the 4 MiB check came after reading the
whole file), a FIFO blocked for ever, and a directory's *.yaml linked to a device was skipped unseen. The
commands run in a child process with its address space limited to 1 GiB and a timeout, so that a regression
fails the test instead of eating the machine's memory.
"""

from __future__ import annotations

import os
import subprocess
import sys

from config.test_config_wording import GOOD  # the smallest valid config

# Each command runs in-process through click's runner; its exit code and output go out as one line each.
RUN = """\
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from click.testing import CliRunner
from macrowatch.commands.cli import cli
for args in sys.argv[1:]:
    result = CliRunner().invoke(cli, args.split("|"))
    print(result.exit_code, "|".join(result.output.splitlines()), flush=True)
"""


def test_special_and_huge_config_files_are_refused_before_reading(tmp_path):
    os.symlink("/dev/zero", tmp_path / "zero.yaml")
    os.symlink("/dev/urandom", tmp_path / "random.yaml")
    os.mkfifo(tmp_path / "fifo.yaml")
    with (tmp_path / "huge.yaml").open("wb") as handle:  # sparse: no disk space, but 8 GiB to read
        handle.truncate(8 << 30)
    confdir = tmp_path / "conf.d"
    confdir.mkdir()
    (confdir / "a.yaml").write_text(GOOD)
    os.symlink("/dev/zero", confdir / "b.yaml")
    os.symlink("/dev/zero", tmp_path / "zero.test.yaml")
    commands = [f"check|-c|{tmp_path / name}" for name in ("zero.yaml", "random.yaml", "fifo.yaml", "huge.yaml")]
    commands += [f"check|-c|{confdir}", f"test|{tmp_path / 'zero.test.yaml'}"]
    env = {**os.environ, "MACROWATCH_CONFIG": ""}
    result = subprocess.run([sys.executable, "-c", RUN, *commands], capture_output=True, text=True, timeout=20,
                            env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == [
        f"2 {tmp_path / 'zero.yaml'}: is a device (/dev/zero), not a regular file|{tmp_path / 'zero.yaml'}: 1 error",
        f"2 {tmp_path / 'random.yaml'}: is a device (/dev/urandom), not a regular file|"
        f"{tmp_path / 'random.yaml'}: 1 error",
        f"2 {tmp_path / 'fifo.yaml'}: is a FIFO (named pipe), not a regular file|{tmp_path / 'fifo.yaml'}: 1 error",
        f"2 {tmp_path / 'huge.yaml'}: file is larger than 4 MiB|{tmp_path / 'huge.yaml'}: 1 error",
        f"2 {confdir / 'b.yaml'}: is a device (/dev/zero), not a regular file|{confdir}: 1 error",
        f"2 {tmp_path / 'zero.test.yaml'}: is a device (/dev/zero), not a regular file|1 error",
    ]
