# Shared set-up: the checked config, the discovered inputs and the output locations.
import sys

# The library next to the workflow (omnitrain/) is importable here; the rules' scripts add the
# same folder to their own sys.path (they run in subprocesses, possibly in conda envs).
sys.path.insert(0, workflow.basedir)

from omnitrain.config import ConfigError, check_config
from omnitrain.discovery import discover

try:
    config.update(check_config(config))
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

RESULTS = config["pipeline"]["results"]
LOGS = f"{RESULTS}/logs"

# Pairs found with Omnipose's naming rules. Every file that matters is an input of
# validate_inputs, so adding, removing or editing one reruns the validation.
INPUTS = discover(
    config["dir"],
    img_filter=config["img_filter"],
    mask_filter=config["mask_filter"],
    look_one_level_down=config["look_one_level_down"],
)


def validation_settings():
    """The config keys that change what validate_inputs finds."""
    keys = ("img_filter", "mask_filter", "look_one_level_down", "dim", "channel_axis")
    keys += ("chan", "chan2", "all_channels", "nchan", "tyx")
    return {
        "dir": config["dir"],
        **{k: config[k] for k in keys},
        "channels": config["channels"],
        "validation": config["validation"],
    }
