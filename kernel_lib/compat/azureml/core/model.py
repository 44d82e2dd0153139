"""``azureml.core.model.Model`` inside a deployed service's entry script: ``Model.get_model_path``
gives the deployed copy of a model (under AZUREML_MODEL_DIR)."""

from __future__ import annotations

from jupyter_ext.serving import model_path


class Model:
    @staticmethod
    def get_model_path(model_name: str, version: int | None = None, _workspace=None) -> str:
        found = model_path(model_name, version)
        if found is None:
            raise RuntimeError("Model.get_model_path works inside a deployed service's entry script "
                               "(AZUREML_MODEL_DIR is set there); in a notebook use kernel_lib.Model.")
        return found
