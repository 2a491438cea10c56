"""``tfsops build``: optimized and GPU TF Serving images, and host-compatibility checks.

- ``plan``: pure; a build request (arch, GPU, version, tag) becomes rendered
  Dockerfiles and the exact docker build steps (args, tags, labels).
- ``upstream``: pure; reads upstream's ``tools/docker`` files and compares them with
  the plan's release table (used by the tests).
- ``hostcompat``: pure; an image's ``io.tfsops.build.*`` labels against host facts.
- ``hostfacts``: adapter; reads ``/proc/cpuinfo`` and ``nvidia-smi``.
- ``executor``: runs the plan's steps through an ``ImageBuilder`` port.
- ``service``: what the CLI command calls (glues the above together).
"""
