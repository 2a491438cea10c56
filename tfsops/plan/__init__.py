"""Pure planning: from a validated spec to rendered files, a container plan and a diff."""
