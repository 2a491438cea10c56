"""The TF Serving test double (image sources) and its unit tests."""
