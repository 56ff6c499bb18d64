#!/usr/bin/env python
# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Seed ansible-test's get-pip cache so that `ansible-test sanity --venv` works offline.

ansible-test bootstraps pip into each virtual environment it makes by downloading a get-pip
script from a host this network cannot reach. When that script is already in its cache
(~/.ansible/test/cache/get_pip_<version>.py) it uses the cached one. The script written here
bootstraps pip from the interpreter's own `ensurepip` instead, then installs the exact pip
version ansible-test asked for from the package index (which is reachable).

Usage: seed_get_pip.py [--cache-dir DIR]   (run with the Python that has ansible-test)
"""
from __future__ import annotations

import argparse
import os
import re
import sys

BOOTSTRAP = '''"""get-pip stand-in written by fleet.firmware tests/sanity/seed_get_pip.py: ensurepip, then pip."""
import subprocess
import sys

# ansible-test passes pip's own options and the packages to install (pip==X, ...).
ARGS = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install"] + ARGS)
'''


def pip_version_of_ansible_test() -> str:
    """The pip version ansible-test bootstraps (read from its own source, so upgrades follow)."""
    import ansible_test._internal.python_requirements as requirements  # pylint: disable=import-outside-toplevel

    with open(requirements.__file__, encoding="utf-8") as handle:
        source = handle.read()
    found = re.search(r"default_packages = dict\(\s*pip='([0-9.]+)'", source)
    if not found:
        raise SystemExit(f"seed_get_pip: cannot find the pip version in {requirements.__file__}")
    return found.group(1)


def cache_path(cache_dir: str, pip_version: str) -> str:
    return os.path.join(cache_dir, "get_pip_%s.py" % pip_version.replace(".", "_"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=os.path.expanduser("~/.ansible/test/cache"))
    args = parser.parse_args(argv)
    path = cache_path(args.cache_dir, pip_version_of_ansible_test())
    os.makedirs(args.cache_dir, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(BOOTSTRAP)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
