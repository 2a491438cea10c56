"""A TensorFlow Serving test double: ``tensorflow_model_server`` in Python.

Speaks TF Serving's REST and gRPC APIs (official protos), runs SavedModels
with real TensorFlow and starts like the ``tensorflow/serving`` image, so
tfsops' integration tests can run where that image cannot be pulled.
"""

# The TF Serving release whose behaviour (and API wheel) the double follows.
__version__ = "2.21.0-tfsops-double"
