"""Rule select_channels: keep the configured channels (channel first), relabel 1..N, remap links."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

from omnitrain.channels import plan_from_config
from omnitrain.discovery import Pair
from omnitrain.imageio import read_array, write_tiff
from omnitrain.labels import read_links, write_links
from omnitrain.manifest import manifest, write_json
from omnitrain.preprocess import prepare_source
from omnitrain.problems import errors, format_report
from omnitrain.runlog import get_logger
from omnitrain.validation import Settings, check_pair


def main(sm) -> None:
    log = get_logger(sm.log[0])
    cfg = sm.params.settings
    links_file = sm.input.get("links")  # only present when the pair has a links file
    # The same checks as validate_inputs, for this pair: a broken pair stops here with its fix.
    pair = Pair(
        sm.wildcards.sid,
        Path(sm.input.image),
        Path(sm.input.label),
        Path(links_file) if links_file else None,
    )
    _, problems = check_pair(pair, Settings.from_config(sm.config))
    if errors(problems):
        sys.stderr.write(format_report(problems, f"{sm.input.image} cannot be used") + "\n")
        sys.exit(1)
    plan, _ = plan_from_config(cfg)
    image, labels = read_array(sm.input.image), read_array(sm.input.label)
    links = read_links(links_file)
    src = prepare_source(sm.wildcards.sid, image, labels, links, plan, cfg["dim"], cfg["channel_axis"])
    out = sm.output
    write_tiff(out.image, src.image[0] if src.image.shape[0] == 1 else src.image)
    write_tiff(out.labels, src.labels)
    write_links(out.links, src.links)
    inputs = [sm.input.image, sm.input.label] + ([links_file] if links_file else [])
    meta = {
        "source": sm.wildcards.sid,
        "input_shape": list(image.shape),
        "input_dtype": str(image.dtype),
        "channel_axis": src.channel_axis,
        "channels": plan.describe(),
        "shape": list(src.image.shape),
        "dtype": str(src.image.dtype),
        "objects": len(src.label_map),
        "label_map": {str(k): v for k, v in src.label_map.items()},
        "links": len(src.links),
        "normalisation": src.norm.to_json(),
        "manifest": manifest("select_channels", inputs, [out.image, out.labels, out.links], cfg),
    }
    write_json(out.meta, meta)
    log.info(
        f"{sm.input.image}: {image.shape} {image.dtype} -> {tuple(src.image.shape)} {src.image.dtype}"
        f" ({plan.describe()}); {len(src.label_map)} objects relabelled 1..N, {len(src.links)} links"
    )


main(snakemake)  # noqa: F821
