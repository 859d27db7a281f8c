"""The active triggers: where they come from and how the pipeline sees them.

catalog  the stored triggers compiled into the index the pipeline reads
files    YAML triggers read from the config and its trigger files
reload   YAML edits (and SIGHUP) applied without a restart
"""
