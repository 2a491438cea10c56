"""Adapters: the only modules that import docker, grpc, tensorflow_serving, requests, watchdog."""
