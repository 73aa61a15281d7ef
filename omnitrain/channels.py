"""Which channels of an image the network sees, and where the channel axis is.

The omnipose flags ``chan``/``chan2`` (Cellpose's channel choice: 0 = grey, 1 = red, 2 = green,
3 = blue), ``all_channels`` and ``nchan`` are mapped onto one explicit plan; the pipeline's
``channels.select`` (0-based indices) overrides them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Stands for "the mean of all channels" (Cellpose's grey, chan = 0) in a plan's sources.
GREY = -1
#: Stands for an empty channel: Cellpose's chan2 = 0 ("None, will set to zero") when nchan is 2, as the
#: two-channel built-in models (bact_phase_omni, cyto, ...) see a one-channel image.
ZERO = -2


@dataclass(frozen=True)
class ChannelPlan:
    """The channels handed to the network, in order.

    ``sources`` holds 0-based channel indices, or :data:`GREY` for the mean over all channels.
    ``sources`` is None when every channel is used as it is (``all_channels``).
    """

    nchan: int
    sources: tuple[int, ...] | None
    origin: str

    def describe(self) -> str:
        if self.sources is None:
            return f"all {self.nchan} channel(s) as they are"
        names = [
            {GREY: "grey (mean of all channels)", ZERO: "zeros (an empty channel)"}.get(s, f"channel {s}")
            for s in self.sources
        ]
        return ", ".join(names)

    def incompatibility(self, n_channels: int) -> str | None:
        """Why an image with ``n_channels`` channels cannot be used with this plan, or None."""
        if self.sources is None:
            if n_channels != self.nchan:
                return (
                    f"image has {n_channels} channel(s) but all_channels with nchan = {self.nchan}"
                    f" needs exactly {self.nchan}"
                )
            return None
        missing = [s for s in self.sources if s >= n_channels]
        if missing:
            return (
                f"image has {n_channels} channel(s) (indices 0..{n_channels - 1}) but {self.origin}"
                f" asks for channel index {', '.join(map(str, missing))}"
            )
        return None

    def apply(self, image: np.ndarray, channel_axis: int | None) -> np.ndarray:
        """The planned channels of ``image`` stacked first: an array (nchan, *spatial)."""
        data = image[np.newaxis] if channel_axis is None else np.moveaxis(image, channel_axis, 0)
        if self.sources is None:
            return data
        grey = data.mean(axis=0) if GREY in self.sources else None
        zeros = np.zeros_like(data[0])
        return np.stack([grey if s == GREY else zeros if s == ZERO else data[s] for s in self.sources])


def plan_from_config(config: dict) -> tuple[ChannelPlan | None, list[str]]:
    """The channel plan a config asks for, and the reasons it is invalid (empty when valid)."""
    nchan = config["nchan"]
    select = config["channels"]["select"]
    if select is not None:
        plan = ChannelPlan(nchan, tuple(select), "channels.select")
        if len(select) != nchan:
            return plan, [
                f"channels.select keeps {len(select)} channel(s) {list(select)} but nchan is {nchan}:"
                f" set nchan: {len(select)} or change channels.select"
            ]
        return plan, []
    if config["all_channels"]:
        return ChannelPlan(nchan, None, "all_channels"), []
    chan, chan2 = config["chan"], config["chan2"]
    second = (chan2 - 1,) if chan2 else (ZERO,) if nchan == 2 else ()
    sources = (GREY if chan == 0 else chan - 1,) + second
    plan = ChannelPlan(nchan, sources, f"chan = {chan}, chan2 = {chan2}")
    if len(sources) != nchan:
        return plan, [
            f"chan = {chan} and chan2 = {chan2} select {len(sources)} channel(s) but nchan is {nchan}:"
            f" set nchan: {len(sources)}"
            + ", or give the channels explicitly with channels.select, or set all_channels: true"
        ]
    return plan, []


def find_channel_axis(
    image_shape: tuple[int, ...],
    label_shape: tuple[int, ...] | None,
    dim: int,
    channel_axis: int | None,
) -> tuple[int | None, str | None]:
    """Locate the channel axis of an image: (axis or None when there is none, error or None).

    With ``channel_axis`` given it is used (negative values count from the end). Otherwise an
    image with ``dim`` axes has no channel axis, and one with ``dim + 1`` axes has its channel axis
    where removing it leaves the label's shape; without a label, the smaller of the first and last
    axes (RGB images are channel-last, microscopy stacks often channel-first).
    """
    ndim = len(image_shape)
    if ndim == dim:
        return None, None
    if ndim != dim + 1:
        return None, (
            f"image has {ndim} axes {tuple(image_shape)}; with dim = {dim} it must have {dim}"
            f" (one channel) or {dim + 1} (several channels)"
        )
    if channel_axis is not None:
        if not -ndim <= channel_axis < ndim:
            return None, f"channel_axis = {channel_axis} does not exist in an image of shape {image_shape}"
        return channel_axis % ndim, None
    axes = range(ndim)
    if label_shape is not None:
        fits = [a for a in axes if tuple(np.delete(image_shape, a)) == tuple(label_shape)]
        if len(fits) == 1:
            return fits[0], None
        if len(fits) > 1:
            return None, (
                f"cannot tell which axis of the image {tuple(image_shape)} holds the channels;"
                " set channel_axis in the config"
            )
    ends = sorted((image_shape[a], a) for a in (0, ndim - 1))
    return ends[0][1], None
