# jupyter-train's ``azureml`` package for training scripts (see ../README.md). Its path extends
# over every other ``azureml`` folder on sys.path, so Azure ML packages installed beside it
# (azureml.mlflow, ...) stay importable while ``azureml.core`` is this one.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)
