"""Every Python block of README.md and docs/*.md, and every shell block that calls `tsgv-ground`, runs as written
against what the default job leaves behind (`outputs/tsgv-synthetic`, the world in `outputs/synthetic/easy`) — here a tiny model and an
8-video world at those paths, in a scratch folder."""

import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, save_tiny_model

BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)


DOCUMENTS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def readme_blocks(language: str) -> list[str]:
    """The code blocks of `language` in README.md and docs/*.md, in that order."""
    return [body for doc in DOCUMENTS for lang, body in BLOCK.findall(doc.read_text()) if lang == language]


@pytest.fixture(scope="module")
def default_job_outputs(tmp_path_factory, minilm_path):
    from modeling_tsgv.synthetic import generate

    folder = tmp_path_factory.mktemp("readme")
    generate(folder / "outputs" / "synthetic" / "easy", num_videos=8, seed=0, preset="easy", progress=False)
    save_tiny_model(folder / "outputs" / "tsgv-synthetic", minilm_path, relevance_head=True)  # as the default job's
    return folder


def _run(command, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


PYTHON_BLOCKS = readme_blocks("python")
GROUND_BLOCKS = [block for block in readme_blocks("bash") if "tsgv-ground " in block]


def test_the_readme_has_blocks_to_run():
    assert len(PYTHON_BLOCKS) >= 2 and GROUND_BLOCKS


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[f"python-{i + 1}" for i in range(len(PYTHON_BLOCKS))])
def test_readme_python_block_runs_as_written(block, default_job_outputs):
    result = _run([sys.executable, "-c", block], default_job_outputs)
    assert result.returncode == 0, f"README block failed:\n{block}\n{result.stderr[-3000:]}"
    assert '"start"' in result.stdout or "'start'" in result.stdout  # it answered in seconds


@pytest.mark.skipif(shutil.which("tsgv-ground") is None, reason="tsgv-ground not installed (pip install -e .)")
@pytest.mark.parametrize("block", GROUND_BLOCKS, ids=[f"shell-{i + 1}" for i in range(len(GROUND_BLOCKS))])
def test_readme_shell_block_runs_as_written(block, default_job_outputs):
    result = _run(["bash", "-euo", "pipefail", "-c", block], default_job_outputs)
    assert result.returncode == 0, f"README block failed:\n{block}\n{result.stderr[-3000:]}"
    assert (default_job_outputs / "timeline.png").exists() and any((default_job_outputs / "clips").iterdir())
