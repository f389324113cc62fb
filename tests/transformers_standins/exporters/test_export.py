"""Stand-in for transformers' `tests/exporters/test_export.py` (not in the sdist).

`ModelTesterMixin` inherits `ExportTesterMixin`, transformers' export tests (torch.export, ONNX, ExecuTorch,
OpenVINO, TensorRT back ends, most of which need packages and hardware this project does not use). The stand-in keeps
the one check a tsgv user relies on: `torch.export` of the model's forward with static shapes gives the eager
outputs. It honours the mixin's own switch `test_torch_exportable`.
"""

import copy
import unittest

import torch


class ExportTesterMixin:
    """`test_torch_export`: the exported program of each model class matches eager on the tester's inputs."""

    def test_torch_export(self):
        if not self.test_torch_exportable:
            raise unittest.SkipTest(f"{type(self).__name__} sets test_torch_exportable = False")
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(copy.deepcopy(config)).eval()
            kwargs = self._prepare_for_class(inputs, model_class)
            with torch.no_grad():
                eager = model(**kwargs)
                program = torch.export.export(model, args=(), kwargs=kwargs, strict=False)
                exported = program.module()(**kwargs)
            for name, value in eager.items():
                if isinstance(value, torch.Tensor):
                    torch.testing.assert_close(exported[name], value, msg=f"{model_class.__name__}.{name}")
