# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The offline get-pip seed for ansible-test really bootstraps pip from ensurepip."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import venv
from pathlib import Path

SEED = Path(__file__).resolve().parents[1] / "sanity" / "seed_get_pip.py"


def load_seed():
    spec = importlib.util.spec_from_file_location("seed_get_pip", SEED)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seed_is_named_for_the_pip_version_ansible_test_asks_for(tmp_path: Path):
    seed = load_seed()
    version = seed.pip_version_of_ansible_test()
    assert version.replace(".", "").isdigit()
    out = subprocess.run([sys.executable, str(SEED), "--cache-dir", str(tmp_path)], capture_output=True, text=True, check=True)
    path = Path(out.stdout.strip())
    assert path == tmp_path / f"get_pip_{version.replace('.', '_')}.py"
    assert "ensurepip" in path.read_text()


def test_seeded_script_bootstraps_pip_into_an_empty_venv_without_the_network(tmp_path: Path):
    seed = load_seed()
    script = tmp_path / "get_pip.py"
    script.write_text(seed.BOOTSTRAP)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    assert subprocess.run([str(python), "-m", "pip", "--version"], capture_output=True, check=False).returncode != 0
    # No package named: ensurepip alone, as when the exact pip version is already bundled.
    subprocess.run([str(python), str(script), "--no-setuptools", "--no-wheel", "--no-index", "pip"], check=True, capture_output=True)
    assert subprocess.run([str(python), "-m", "pip", "--version"], capture_output=True, check=False).returncode == 0
