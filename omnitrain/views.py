"""Settings that change how a job shows its progress, never what it writes: a job reads them from Snakemake's
config itself, since a param would rerun its step in place whenever one is switched. (A module of its own,
importing nothing: a step's version covers the code it imports.)"""

VIEW_SETTINGS = {"monitor.tensorboard": True}


def view_setting(sm, key: str):
    """A VIEW_SETTINGS ``key`` ("section.name") from a job's ``snakemake`` object's config, or its default."""
    section, _, name = key.partition(".")
    return sm.config.get(section, {}).get(name, VIEW_SETTINGS[key])
