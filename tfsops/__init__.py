"""tfsops: deploy and operate TensorFlow Serving in Docker."""

__version__ = "0.1.0"
