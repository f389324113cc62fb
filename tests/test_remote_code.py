"""A saved model folder loads where tsgv is not installed: `trust_remote_code=True` with the module files saved beside
the weights (AutoConfig / AutoModel / AutoProcessor / pipeline), giving the installed package's answers."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import save_tiny_model, write_test_video
from transformers import pipeline

from modeling_tsgv import TSGVForGrounding
from modeling_tsgv.pipeline_tsgv import TASK

QUERIES = ["a red ball rolls", "someone waves"]

REMOTE = """
import importlib.abc, json, sys


class Block(importlib.abc.MetaPathFinder):  # this Python has no tsgv
    def find_spec(self, name, path=None, target=None):
        if name == "modeling_tsgv" or name.startswith("modeling_tsgv."):
            raise ImportError(f"{name} is blocked")


sys.meta_path.insert(0, Block())
try:
    import modeling_tsgv  # noqa: F401
    sys.exit("the block failed")
except ImportError:
    pass
folder, video, queries = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
from transformers import AutoConfig, AutoModel, AutoProcessor, pipeline

config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
model = AutoModel.from_pretrained(folder, trust_remote_code=True)
processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
pipe = pipeline("temporal-sentence-grounding", model=folder, trust_remote_code=True, device="cpu")
print(json.dumps({
    "classes": [type(x).__module__ + "." + type(x).__name__ for x in (config, model, processor, pipe)],
    "spans": pipe(video, queries=queries, top_k=3),
}))
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory, minilm_path):
    folder = save_tiny_model(tmp_path_factory.mktemp("model"), minilm_path, inference_window_s=20.0)
    video = write_test_video(folder.parent / "v.mp4", np.arange(0, 30, 0.5))  # two windows
    return folder, str(video)


def test_the_folder_carries_auto_map_custom_pipeline_and_code(saved):
    folder, _ = saved
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_tsgv.TSGVConfig",
        "AutoModel": "modeling_tsgv.TSGVForGrounding",
    }
    assert config["custom_pipelines"][TASK]["impl"] == "pipeline_tsgv.TemporalSentenceGroundingPipeline"
    processor = json.loads((folder / "processor_config.json").read_text())
    assert processor["auto_map"] == {"AutoProcessor": "processing_tsgv.TSGVProcessor"}
    for name in ("configuration_tsgv.py", "modeling_tsgv.py", "processing_tsgv.py", "pipeline_tsgv.py", "video.py"):
        assert (folder / name).is_file(), name


def test_it_loads_and_answers_where_tsgv_cannot_be_imported(saved, tmp_path):
    folder, video = saved
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [sys.executable, "-c", REMOTE, str(folder), video, json.dumps(QUERIES)],
        cwd=tmp_path,  # not the repository: its modeling_tsgv folder must not be what gets imported
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    remote = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(name.startswith("transformers_modules.") for name in remote["classes"]), remote["classes"]
    # the installed package, same folder, same video: same answers
    local = pipeline(TASK, model=str(folder), device="cpu")(video, queries=QUERIES, top_k=3)
    for remote_spans, local_spans in zip(remote["spans"], local):
        for key in ("start", "end", "score"):
            assert [s[key] for s in remote_spans] == pytest.approx([s[key] for s in local_spans], abs=1e-5)


def test_installed_users_need_no_trust_remote_code(saved):
    folder, video = saved
    pipe = pipeline(TASK, model=str(folder), device="cpu")  # custom_pipelines in config.json must not get in the way
    assert type(pipe).__module__ == "modeling_tsgv.pipeline_tsgv"
    assert type(pipe.model) is TSGVForGrounding
